package mesh

// Installation (issue 10): the names the Helm chart (charts/weft) gives its
// objects and that `weftctl check` and tests/e2e/helm look for. The chart
// cannot import Go, so charts/weft/templates/_helpers.tpl spells the same
// values; tests/e2e/helm checks the rendered chart against these constants.
const (
	// ControlPlaneService is the control plane's Service in
	// ControlPlaneNamespace (ports PortXDS, PortWebhook, PortDebug).
	ControlPlaneService = "weft-control-plane"
	// ControlPlaneDeployment is the control plane's Deployment; its pods
	// run the weft-control-plane and weft-injector containers.
	ControlPlaneDeployment = "weft-control-plane"
	// WebhookConfigName is the MutatingWebhookConfiguration; WebhookName
	// its only webhook.
	WebhookConfigName = "weft-injector"
	WebhookName       = "inject.weft.dev"
	// WebhookTLSSecret holds the webhook's serving certificate (tls.crt,
	// tls.key) and the CA that signed it (ca.crt = the caBundle).
	WebhookTLSSecret = "weft-webhook-tls"
	// EgressGatewayServiceAccount runs the egress gateway pods.
	EgressGatewayServiceAccount = "weft-egress-gateway"
	// LabelApp is the label every object of the chart carries with its
	// component name (app.kubernetes.io/name).
	LabelApp = "app.kubernetes.io/name"
	// NativeSidecarMinMinor is the first Kubernetes 1.x minor with native
	// sidecars (restartable init containers) on by default.
	NativeSidecarMinMinor = 29
)
