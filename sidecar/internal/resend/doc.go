// Package resend holds what the sidecar's HTTP/1.1 client (h1client: a
// request that failed on a stale keep-alive connection) and the proxy (the
// inbound's answer when the app closed its connection before answering)
// share when they decide whether a request that got no answer may be sent
// again: which methods may be repeated without asking, and which errors
// say the peer closed the connection. Each keeps its own rule on top:
// h1client also counts ECONNABORTED as a closed connection, a method ""
// as GET and net/http's X-Idempotency-Key header, as net/http's
// Transport does; the proxy requires a request without a body.
package resend
