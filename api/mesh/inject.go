package mesh

// Injection: the names the injector (injector/inject) writes into a pod and
// that the sidecar (`weft-sidecar` and `weft-sidecar init`) reads back. The
// injector and the sidecar never import each other, so this is their
// contract.
const (
	// BinaryInjector is the file name of the injection webhook binary.
	BinaryInjector = "weft-injector"
	// InjectorPath is the URL path the webhook serves AdmissionReviews on.
	InjectorPath = "/inject"

	// ContainerSidecar is the name of the injected proxy container (a
	// native sidecar init container, or a regular container on clusters
	// without native sidecars); ContainerInit is the capture init step.
	ContainerSidecar = "weft-proxy"
	ContainerInit    = "weft-init"
	// SidecarInitCommand is the `weft-sidecar` subcommand that writes the
	// capture rules (`weft-sidecar init --flags...`).
	SidecarInitCommand = "init"
	// SidecarCaptureFlag puts the proxy in pod mode (the outbound listener
	// takes what the init step's rules redirect; both listeners route by
	// the original destination). The injector always sets it.
	SidecarCaptureFlag = "--capture"

	// VolumeToken is the projected ServiceAccount token volume, mounted at
	// TokenDir; the token is the file TokenFile in it, audience
	// TokenAudience. VolumeTrustBundle is the ConfigMap TrustBundleConfigMap
	// (key TrustBundleKey) mounted at TrustBundleDir.
	VolumeToken          = "weft-token"
	TokenDir             = "/var/run/secrets/weft.dev/token"
	TokenFile            = "token"
	TokenAudience        = "weft"
	VolumeTrustBundle    = "weft-ca-root"
	TrustBundleDir       = "/var/run/secrets/weft.dev/ca"
	TrustBundleConfigMap = "weft-ca-root"
	TrustBundleKey       = "root-cert.pem"
	// VolumeXtablesLock is an emptyDir mounted at XtablesLockDir in the
	// init step: iptables-legacy takes its lock in /run/xtables.lock, and
	// the init step's root filesystem is read-only (as Linkerd's
	// proxy-init does).
	VolumeXtablesLock = "weft-xtables-lock"
	XtablesLockDir    = "/run"
	// DefaultTokenExpirationSeconds is the projected token's lifetime (the
	// kubelet rotates it at 80%).
	DefaultTokenExpirationSeconds = 3600

	// Environment of the sidecar container, filled from the downward API
	// and referenced from its arguments as $(NAME).
	EnvWorkload       = "WEFT_WORKLOAD"        // metadata.name
	EnvNamespace      = "WEFT_NAMESPACE"       // metadata.namespace
	EnvServiceAccount = "WEFT_SERVICE_ACCOUNT" // spec.serviceAccountName
	EnvPodIP          = "WEFT_POD_IP"          // status.podIP
	EnvTrustDomain    = "WEFT_TRUST_DOMAIN"
	// EnvAppProbes holds the app's original HTTP probes as JSON: an object
	// from the rewritten path (AppProbePath) to {"port": n, "path": "/x",
	// "scheme": "HTTP"|"HTTPS", "host": "...", "httpHeaders": [...]}
	// (corev1.HTTPGetAction with the named port resolved to a number). The
	// sidecar's health port answers GET <path> by calling that probe on
	// 127.0.0.1 (or host) in plaintext, so strict mTLS never breaks kubelet
	// probes.
	EnvAppProbes = "WEFT_APP_PROBES"

	// HealthReadyPath is the sidecar's own readiness path on PortHealth
	// (the startup probe of the native sidecar).
	HealthReadyPath = "/healthz/ready"
	// AppProbePathPrefix: the injector rewrites an app container's HTTP
	// probe to GET PortHealth AppProbePath(container, kind).
	AppProbePathPrefix = "/app-health/"

	// AnnotationRewriteProbes set to "false" on a pod keeps its probes as
	// they are.
	AnnotationRewriteProbes = "weft.dev/rewrite-app-probes"
	// AnnotationProxyCPULimit and AnnotationProxyMemoryLimit set the
	// sidecar's limits (AnnotationProxyCPU / AnnotationProxyMemory set the
	// requests).
	AnnotationProxyCPULimit    = "weft.dev/proxy-cpu-limit"
	AnnotationProxyMemoryLimit = "weft.dev/proxy-memory-limit"
	// AnnotationIncludeInboundPorts limits inbound capture to these ports
	// ("*" = all, the default).
	AnnotationIncludeInboundPorts = "weft.dev/include-inbound-ports"
	// AnnotationDNSCapture "true" or "false" on a pod overrides the mesh
	// config's dnsCapture: the init step redirects the app's DNS (UDP and
	// TCP port 53, not the proxy's own uid) to the sidecar's DNS proxy
	// (PortDNSProxy), and the sidecar runs it (SidecarFlagDNSProxy).
	AnnotationDNSCapture = "weft.dev/dns-capture"
	// SidecarFlagDNSProxy turns on the sidecar's DNS proxy on
	// 127.0.0.1:PortDNSProxy.
	SidecarFlagDNSProxy = "--dns-proxy"

	// DefaultProxyImage is the sidecar image when none is configured.
	DefaultProxyImage = "ghcr.io/weftmesh/weft-sidecar:latest"
	// DefaultProxyCPU and DefaultProxyMemory are the sidecar's requests.
	DefaultProxyCPU    = "100m"
	DefaultProxyMemory = "64Mi"
)

// Flags of `weft-sidecar init` (the capture step) that the injector sets.
// Lists are comma-separated; "*" means every port.
const (
	InitFlagProxyUID             = "--proxy-uid"
	InitFlagInboundPort          = "--inbound-port"
	InitFlagOutboundPort         = "--outbound-port"
	InitFlagIncludeInboundPorts  = "--include-inbound-ports"
	InitFlagExcludeInboundPorts  = "--exclude-inbound-ports"
	InitFlagIncludeOutboundPorts = "--include-outbound-ports"
	InitFlagExcludeOutboundPorts = "--exclude-outbound-ports"
	InitFlagExcludeOutboundCIDRs = "--exclude-outbound-cidrs"
	// InitFlagCaptureDNS redirects the app's UDP and TCP port 53 to
	// InitFlagDNSPort (default PortDNSProxy), except the proxy uid's.
	InitFlagCaptureDNS = "--capture-dns"
	InitFlagDNSPort    = "--dns-port"
)

// AppProbePath is the path on the sidecar's health port that stands for
// one container's probe: /app-health/<container>/<kind>, kind one of
// "livez", "readyz", "startupz".
func AppProbePath(container, kind string) string {
	return AppProbePathPrefix + container + "/" + kind
}
