package mesh

// Response and request headers of the sidecar's resilience path (issue 5).
const (
	// HeaderOverloaded is set on a 503 the sidecar answers itself because
	// a cluster limit was reached or no endpoint was pickable; its value
	// names the reason: "max_connections", "max_pending_requests",
	// "max_requests", "no_healthy_upstream" (all ejected or none healthy).
	HeaderOverloaded = "x-weft-overloaded"
	// HeaderDebug on a request ("1") asks the outbound sidecar for the
	// debug response headers HeaderAttempts and HeaderUpstream. It is not
	// forwarded upstream.
	HeaderDebug = "x-weft-debug"
	// HeaderAttempts is the number of the try whose response is returned
	// (1 is the first try).
	HeaderAttempts = "x-weft-attempts"
	// HeaderTimeout is set to "request" on a 504 the sidecar answers
	// because the route timeout expired.
	HeaderTimeout = "x-weft-timeout"
	// HeaderAppUnreachable is set ("1") on the 503 a sidecar's inbound
	// answers when the request cannot reach its own app: it could not
	// connect to it (an app that stopped, e.g. a pod terminating while its
	// peers still route to it), or it has no inbound configuration (a
	// sidecar that just started, or whose workload left the registry before
	// its peers heard of it), or the app closed the connection before
	// answering an idempotent request without a body (an app going away
	// closes its keep-alive connections). The request never reached the
	// app, or is safe to send again, so the calling sidecar retries it
	// on another endpoint whatever the method, as for a refused stream.
	// The inbound removes it from the app's own responses: an app cannot
	// claim it.
	HeaderAppUnreachable = "x-weft-app-unreachable"
)

// OverloadNoHealthy is the HeaderOverloaded value when no endpoint is
// pickable (none HEALTHY, or every one ejected by outlier detection).
const OverloadNoHealthy = "no_healthy_upstream"
