// Package input reads the batch file that the producer enqueues: the first
// step of the flow.
//
// A batch is CSV with the header zone_id,account_id,destination_conf (in any
// order) or JSONL with the same keys, one destination per record; an
// optional credential column (key) names the Cloudflare credential of the
// row, from a credentials file (Options.Credentials). Reader
// streams it in constant memory, whatever its size or content: each call to
// Next returns one checked Row (scope, lower-cased scope id, parsed
// destination_conf) or a *LineError naming the line and the field that is
// wrong, and the caller carries on to the next line. Only I/O errors and an
// unusable CSV header stop the reader.
//
// Error messages never quote a destination_conf: they name the field and the
// reason. Duplicate destinations are not the reader's business; the producer
// finds them.
package input
