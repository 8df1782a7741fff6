// Package accesslog writes the sidecar's access log: one JSON line per
// request (Entry) to stdout, as the HttpConnectionManager access_log of the
// accepted listeners says (docs/architecture.md, "Observability contract":
// envoy.access_loggers.stdout with json_format, and runtime_filter /
// status_code_filter GE, alone or under an and_filter).
//
// Config is immutable and swapped atomically by the sidecar; Logger.Log
// runs on the request goroutine after the response, takes a mutex only
// around the write of one line, and does nothing when logs are off.
package accesslog
