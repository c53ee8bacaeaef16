// Package luascript runs the Lua scripts of two packages as one script run.
//
// Where a change that one package owns must be followed at once by a change
// that another owns (a destination's outcome in the ledger, then the release
// of its challenge location), Then runs the two scripts in one EVALSHA: one
// round trip instead of two, and nothing else runs in between. Each script
// keeps its own source, keys, arguments and result, and needs no knowledge of
// the other: the chained script calls each as a function of its own KEYS and
// ARGV. The keys of both must be on one node (the tool refuses Redis
// Cluster, see internal/keys).
package luascript
