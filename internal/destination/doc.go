// Package destination reads and writes objects in Logpush destinations: the
// storage side of the ownership challenge.
//
// In the flow, logpush:challenge asks Cloudflare to write an ownership
// challenge file into the user's bucket; logpush:poll then calls a [Reader]
// until that file exists and was written after the challenge request, and
// validates the token inside it. The Cloudflare simulator and
// the tests play Cloudflare's side with a [Writer].
//
// A read has three kinds of outcome, which the worker maps onto the queue:
//
//   - not yet: [ErrNotFound] (no such object) or [ErrStale] (an object older
//     than the challenge request, such as the file of an earlier challenge);
//     the worker snoozes the task and polls again later, spending no retry;
//   - transient ([IsTransient]): throttling, server errors, timeouts, network
//     errors, cancellation; the queue retries with backoff;
//   - permanent (any other error, an [*Error] of Kind [Permanent]): a missing
//     bucket, denied access, an oversized file, an unknown scheme; the
//     destination fails and the error text tells the operator what to fix.
//
// Implementations: [S3] (AWS S3 through aws-sdk-go-v2), [GCS] (Google Cloud
// Storage through cloud.google.com/go/storage, reading with the XML API,
// whose answers carry Last-Modified), [Azure] (Azure Blob Storage through
// azblob, with the SAS of the destination_conf first, then a configured
// account key or Entra ID credential) and [File] (the local file system, for
// the simulator and demos). Each answers a present file with one request,
// and a stale one without reading its body. [Mux] and [WriterMux] dispatch
// on [Location.Scheme]. Errors, [Location.String] and everything else this
// package prints never carry credentials: not the SAS a Location holds, not
// an account key.
package destination
