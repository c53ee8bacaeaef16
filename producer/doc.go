// Package producer turns an input file into a batch: it validates every line
// first (nothing is enqueued if one is bad), names the batch after its
// content, records each destination in the events store and enqueues a
// logpush:challenge task for each one that needs a challenge. Destinations
// that need none end at once as not_required. Task IDs derive from the batch
// and the destination, so re-running a file, or a file half done, adds
// nothing.
package producer
