// Package examples holds programs that use logpush-onboard as a library,
// each a module of its own that depends on this one through a replace
// directive, as another program would; the tests here build and run them.
package examples
