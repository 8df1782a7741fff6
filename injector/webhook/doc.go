// Package webhook serves the injector (injector/inject) as a Kubernetes
// admission/v1 mutating webhook over TLS.
//
// Flow: the API server POSTs an AdmissionReview to mesh.InjectorPath ->
// Handler reads at most MaxBodyBytes, DecodeReview checks the envelope ->
// Review decides: pods on CREATE are injected with inject.Pod (namespace from
// the request when the object has none), everything else is allowed
// unchanged -> the response carries the same UID and a JSONPatch (or a
// denial naming the bad annotation). GET /healthz answers 200 for probes.
//
// Run owns the goroutines: one errgroup runs the HTTPS server and its
// shutdown on ctx cancellation (bounded by Config.ShutdownTimeout). The
// serving certificate is read through CertReloader.GetCertificate, which
// re-reads the key pair when either file changes (checked at most once a
// second), so a rotated Secret needs no restart; a half-written pair keeps
// the previous certificate in use.
package webhook
