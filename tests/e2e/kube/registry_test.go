package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/registry/kube"
	"github.com/weftmesh/weft/tests/kubeharness"
)

const shopNS = "shop"

// TestKubeRegistry runs two real weft-control-plane replicas with
// --registry=kube against a real API server and kube-controller-manager
// (EndpointSlices come from the real controller), and talks ADS to them as
// a pod's sidecar with a real bound ServiceAccount token.
func TestKubeRegistry(t *testing.T) {
	c := kubeharness.Start(t, kubeharness.WithControllerManager())
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	client := c.Client

	must(t, c.CreateNamespace(ctx, mesh.ControlPlaneNamespace, nil))
	must(t, c.CreateNamespace(ctx, shopNS, map[string]string{mesh.LabelInject: mesh.InjectEnabled}))
	must(t, c.CreateNode(ctx, "node-1"))
	for _, sa := range []string{"web", "pay"} {
		_, err := client.CoreV1().ServiceAccounts(shopNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		must(t, err)
	}
	svc, err := client.CoreV1().Services(shopNS).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "pay"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "pay"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "admin", Port: 9090, TargetPort: intstr.FromInt32(9091)},
			},
		},
	}, metav1.CreateOptions{})
	must(t, err)
	for _, s := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "pay-headless"}, Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": "pay"}, Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromString("http")}},
		}},
		// An external destination through the egress gateway (Egress
		// contract): an egress virtual host, never a cluster.
		{ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeExternalName, ExternalName: "example.com",
			Ports: []corev1.ServicePort{{Name: "https", Port: 443}},
		}},
	} {
		_, err := client.CoreV1().Services(shopNS).Create(ctx, s, metav1.CreateOptions{})
		must(t, err)
	}
	_, err = client.CoreV1().Services(mesh.EgressGatewayNamespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: mesh.EgressGatewayService},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": mesh.EgressGatewayService},
			Ports:    []corev1.ServicePort{{Name: "tunnel", Port: mesh.PortEgressGateway, TargetPort: intstr.FromInt32(mesh.PortEgressGateway)}},
		},
	}, metav1.CreateOptions{})
	must(t, err)
	webPod := startPod(ctx, t, c, "web-0", "web", "web", "10.244.0.10")
	startPod(ctx, t, c, "pay-0", "pay", "pay", "10.244.0.20")
	startPod(ctx, t, c, "pay-1", "pay", "pay", "10.244.0.21")

	// Two replicas with short leader timings.
	type replica struct {
		name, xds string
		proc      *kubeharness.Process
	}
	var replicas []*replica
	for _, name := range []string{"cp-a", "cp-b"} {
		ip := kubeharness.RandomLoopback()
		ports, err := kubeharness.FreePorts(ctx, ip, 2)
		must(t, err)
		xdsPort, dbgPort := ports[0], ports[1]
		r := &replica{name: name, xds: net.JoinHostPort(ip.String(), strconv.Itoa(xdsPort))}
		r.proc = c.StartProcess(t, name, filepath.Join(binDir, mesh.BinaryControlPlane),
			"--registry=kube", "--kubeconfig="+c.Kubeconfig, "--leader-identity="+name,
			"--xds-address="+r.xds, "--debug-address="+net.JoinHostPort(ip.String(), strconv.Itoa(dbgPort)),
			"--leader-lease-duration=3s", "--leader-renew-deadline=2s", "--leader-retry-period=250ms",
			"--resync=1s", "--log-level=debug")
		replicas = append(replicas, r)
	}

	// Exactly one leader; it creates the CA Secret and the trust bundle
	// ConfigMap in the labelled namespace.
	var leaderName string
	kubeharness.WaitFor(ctx, t, "a leader and the trust bundle ConfigMap", func() (bool, string) {
		lease, err := client.CoordinationV1().Leases(mesh.ControlPlaneNamespace).Get(ctx, mesh.LeaderLeaseName, metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return false, fmt.Sprintf("lease: %v", err)
		}
		leaderName = *lease.Spec.HolderIdentity
		sec, err := client.CoreV1().Secrets(mesh.ControlPlaneNamespace).Get(ctx, mesh.CASecretName, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Sprintf("secret: %v", err)
		}
		cm, err := client.CoreV1().ConfigMaps(shopNS).Get(ctx, mesh.TrustBundleConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Sprintf("configmap: %v", err)
		}
		if cm.Data[mesh.TrustBundleKey] != string(sec.Data[mesh.CASecretBundleKey]) || len(cm.Data[mesh.TrustBundleKey]) == 0 {
			return false, "configmap bundle differs from the CA secret's"
		}
		return true, ""
	})
	if _, err := client.CoreV1().ConfigMaps("default").Get(ctx, mesh.TrustBundleConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("trust bundle ConfigMap in an unlabelled namespace: err = %v", err)
	}
	leaders := 0
	for _, r := range replicas {
		if strings.Contains(readLog(t, r.proc), "leader: trust bundle configmap created") {
			leaders++
			if r.name != leaderName {
				t.Errorf("%s wrote the ConfigMap but %s holds the lease", r.name, leaderName)
			}
		}
	}
	if leaders != 1 {
		t.Errorf("%d replicas wrote the ConfigMap, want 1", leaders)
	}
	sec, err := client.CoreV1().Secrets(mesh.ControlPlaneNamespace).Get(ctx, mesh.CASecretName, metav1.GetOptions{})
	must(t, err)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(sec.Data[mesh.CASecretBundleKey]) {
		t.Fatal("CA secret has no roots")
	}

	webToken := boundToken(ctx, t, c, "web", webPod)
	nodeID := mesh.NodeID("web-0", shopNS)
	var follower *replica
	for _, r := range replicas {
		if r.name != leaderName {
			follower = r
		}
	}

	// The follower serves xDS too: connect the sidecar of web-0 to it.
	ads := dialADS(ctx, t, follower.xds, roots, webToken, nodeID)
	payCluster := "outbound|80||pay.shop.svc.cluster.local"
	t.Run("initial config", func(t *testing.T) {
		ads.waitFor(ctx, t, "listeners, routes, clusters and endpoints of pay", func(s *adsState) (bool, string) {
			if s.listeners["outbound"] == nil || s.listeners["inbound"] == nil {
				return false, fmt.Sprintf("listeners %v", keys(s.listeners))
			}
			if s.clusters[payCluster] == nil || s.clusters["outbound|9090||pay.shop.svc.cluster.local"] == nil ||
				s.clusters["outbound|8080||pay-headless.shop.svc.cluster.local"] == nil {
				return false, fmt.Sprintf("clusters %v", keys(s.clusters))
			}
			for _, name := range keys(s.clusters) {
				if strings.Contains(name, "ext.shop") {
					return false, "a cluster for the ExternalName Service"
				}
			}
			rc := s.routes["outbound"]
			if rc == nil {
				return false, "no route config"
			}
			var domains, extDomains []string
			for _, vh := range rc.VirtualHosts {
				switch vh.Name {
				case "pay.shop.svc.cluster.local:80":
					domains = vh.Domains
				case mesh.VirtualHostEgressPrefix + "service/shop/ext:443":
					extDomains = vh.Domains
				}
			}
			for _, d := range []string{"example.com:443", "ext.shop:443", "ext.shop.svc:443", "ext.shop.svc.cluster.local:443"} {
				if !contains(extDomains, d) {
					return false, fmt.Sprintf("egress domain %q missing from %v (ExternalName Service ext)", d, extDomains)
				}
			}
			for _, d := range []string{"pay", "pay.shop", "pay.shop.svc", "pay.shop.svc.cluster.local", "pay:80", svc.Spec.ClusterIP, svc.Spec.ClusterIP + ":80"} {
				if !contains(domains, d) {
					return false, fmt.Sprintf("domain %q missing from %v", d, domains)
				}
			}
			got := health(s.endpoints[payCluster])
			want := map[string]core.HealthStatus{"10.244.0.20:8080": core.HealthStatus_HEALTHY, "10.244.0.21:8080": core.HealthStatus_HEALTHY}
			if !equalHealth(got, want) {
				return false, fmt.Sprintf("endpoints %v", got)
			}
			return true, ""
		})
	})

	t.Run("scale up reaches EDS within 1s", func(t *testing.T) {
		createPod(ctx, t, c, "pay-2", "pay", "pay")
		start := time.Now()
		markReady(ctx, t, c, "pay-2", "10.244.0.22", true)
		ads.waitFor(ctx, t, "pay-2 healthy", func(s *adsState) (bool, string) {
			got := health(s.endpoints[payCluster])
			return got["10.244.0.22:8080"] == core.HealthStatus_HEALTHY, fmt.Sprintf("%v", got)
		})
		took := time.Since(start)
		t.Logf("new ready pod -> EDS in %s", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("new ready pod reached EDS in %s, want <= 1s", took)
		}
	})

	t.Run("not ready is UNHEALTHY, terminating is DRAINING", func(t *testing.T) {
		markReady(ctx, t, c, "pay-1", "10.244.0.21", false)
		// A pod with a node and no kubelet stays, terminating, after delete.
		must(t, client.CoreV1().Pods(shopNS).Delete(ctx, "pay-0", metav1.DeleteOptions{}))
		ads.waitFor(ctx, t, "pay-1 unhealthy, pay-0 draining", func(s *adsState) (bool, string) {
			got := health(s.endpoints[payCluster])
			return got["10.244.0.21:8080"] == core.HealthStatus_UNHEALTHY && got["10.244.0.20:8080"] == core.HealthStatus_DRAINING &&
				got["10.244.0.22:8080"] == core.HealthStatus_HEALTHY, fmt.Sprintf("%v", got)
		})
	})

	t.Run("resync pushes nothing", func(t *testing.T) {
		// Resyncs (--resync=1s) re-deliver every cached object unchanged.
		// What is measured is the absence of responses over three resync
		// periods in which no watched object changed: the objects'
		// resourceVersions are the same before the settle time and after
		// the window. A window in which a controller did write something
		// proves nothing either way and is tried again.
		const settle = 2500 * time.Millisecond // > the debouncer's 1 s max: changes before fp0 are pushed
		for attempt := 1; ; attempt++ {
			fp0 := watchedVersions(ctx, t, c)
			settled := time.Now().Add(settle)
			ads.quiet(ctx, t, settle)
			if d := time.Until(settled); d > 0 {
				time.Sleep(d) // settle time within a deadline, see above
			}
			before := ads.responses()
			time.Sleep(3 * time.Second) // the window: what is measured is the absence of pushes
			n := ads.responses() - before
			if diff := diffVersions(fp0, watchedVersions(ctx, t, c)); diff != "" {
				if attempt == 4 {
					t.Fatalf("watched objects changed in every window; last: %s", diff)
				}
				t.Logf("attempt %d: watched objects changed (%s); %d responses; trying again", attempt, diff, n)
				continue
			}
			if n != 0 {
				t.Errorf("%d responses during resyncs without a change: %v", n, ads.lines(before))
			}
			return
		}
	})

	t.Run("token of another pod is refused", func(t *testing.T) {
		payPod, err := client.CoreV1().Pods(shopNS).Get(ctx, "pay-2", metav1.GetOptions{})
		must(t, err)
		payToken := boundToken(ctx, t, c, "pay", payPod)
		if code := adsRefusal(ctx, t, follower.xds, roots, payToken, nodeID); code != codes.PermissionDenied {
			t.Errorf("pay-2's token as %s: %v, want PermissionDenied", nodeID, code)
		}
		// Wrong audience.
		tr, err := client.CoreV1().ServiceAccounts(shopNS).CreateToken(ctx, "web", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
			Audiences: []string{"not-weft"}, BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: webPod.Name, UID: webPod.UID},
		}}, metav1.CreateOptions{})
		must(t, err)
		if code := adsRefusal(ctx, t, follower.xds, roots, tr.Status.Token, nodeID); code != codes.Unauthenticated {
			t.Errorf("token for another audience: %v, want Unauthenticated", code)
		}
		// A token not bound to a pod.
		tr, err = client.CoreV1().ServiceAccounts(shopNS).CreateToken(ctx, "web", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
			Audiences: []string{mesh.TokenAudience},
		}}, metav1.CreateOptions{})
		must(t, err)
		if code := adsRefusal(ctx, t, follower.xds, roots, tr.Status.Token, nodeID); code != codes.Unauthenticated {
			t.Errorf("unbound token: %v, want Unauthenticated", code)
		}
	})

	t.Run("failover", func(t *testing.T) {
		var lead *replica
		for _, r := range replicas {
			if r.name == leaderName {
				lead = r
			}
		}
		lead.proc.Stop(10 * time.Second)
		start := time.Now()
		kubeharness.WaitFor(ctx, t, "the follower leads", func() (bool, string) {
			lease, err := client.CoordinationV1().Leases(mesh.ControlPlaneNamespace).Get(ctx, mesh.LeaderLeaseName, metav1.GetOptions{})
			if err != nil || lease.Spec.HolderIdentity == nil {
				return false, fmt.Sprintf("%v", err)
			}
			return *lease.Spec.HolderIdentity == follower.name, *lease.Spec.HolderIdentity
		})
		t.Logf("leadership moved to %s in %s", follower.name, time.Since(start).Round(time.Millisecond))
		// The new leader writes: a labelled namespace gets its ConfigMap.
		must(t, c.CreateNamespace(ctx, "shop2", map[string]string{mesh.LabelInject: mesh.InjectEnabled}))
		kubeharness.WaitFor(ctx, t, "the new leader writes the ConfigMap", func() (bool, string) {
			cm, err := client.CoreV1().ConfigMaps("shop2").Get(ctx, mesh.TrustBundleConfigMap, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return cm.Data[mesh.TrustBundleKey] == string(sec.Data[mesh.CASecretBundleKey]), "bundle differs"
		})
		// The follower's xDS kept serving through the failover.
		if err := ads.err(); err != nil {
			t.Errorf("ADS stream on the follower: %v", err)
		}
	})

	t.Run("a deleted ServiceAccount is reported, not pushed", func(t *testing.T) {
		before := ads.responses()
		want := `Pod shop/pay-2: spec.serviceAccountName: ServiceAccount \"pay\" does not exist`
		if strings.Contains(readLog(t, follower.proc), want) {
			t.Fatalf("reported before the deletion:\n%s", readLog(t, follower.proc))
		}
		must(t, client.CoreV1().ServiceAccounts(shopNS).Delete(ctx, "pay", metav1.DeleteOptions{}))
		kubeharness.WaitFor(ctx, t, "the report", func() (bool, string) {
			return strings.Contains(readLog(t, follower.proc), want), "not in the log of " + follower.name
		})
		// The state did not change: nothing is pushed for it. The log line
		// is written before the build's push decision, and a push would
		// follow within the debouncer's 1 s max.
		time.Sleep(1500 * time.Millisecond) // what is measured is the absence of a push
		if n := ads.responses() - before; n != 0 {
			t.Errorf("%d responses after deleting a ServiceAccount: %v", n, ads.lines(before))
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readLog(t *testing.T, p *kubeharness.Process) string {
	t.Helper()
	b, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// createPod creates a pod that carries the sidecar (as the injector makes
// it), bound to node-1.
func createPod(ctx context.Context, t *testing.T, c *kubeharness.Cluster, name, app, sa string) *corev1.Pod {
	t.Helper()
	always := corev1.ContainerRestartPolicyAlways
	p, err := c.Client.CoreV1().Pods(shopNS).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			NodeName:           "node-1",
			ServiceAccountName: sa,
			InitContainers:     []corev1.Container{{Name: mesh.ContainerSidecar, Image: mesh.DefaultProxyImage, RestartPolicy: &always}},
			Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080}, {Name: "admin", ContainerPort: 9091},
			}}},
		},
	}, metav1.CreateOptions{})
	must(t, err)
	return p
}

func startPod(ctx context.Context, t *testing.T, c *kubeharness.Cluster, name, app, sa, ip string) *corev1.Pod {
	t.Helper()
	createPod(ctx, t, c, name, app, sa)
	return markReady(ctx, t, c, name, ip, true)
}

// markReady plays the kubelet: the pod runs at ip, Ready or not.
func markReady(ctx context.Context, t *testing.T, c *kubeharness.Cluster, name, ip string, ready bool) *corev1.Pod {
	t.Helper()
	p, err := c.Client.CoreV1().Pods(shopNS).Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	p.Status.HostIP = "10.0.0.1"
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: cond, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: cond, LastTransitionTime: now},
	}
	p, err = c.Client.CoreV1().Pods(shopNS).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	must(t, err)
	return p
}

// boundToken is what the kubelet projects into the sidecar: a token of sa
// bound to pod, audience weft.
func boundToken(ctx context.Context, t *testing.T, c *kubeharness.Cluster, sa string, pod *corev1.Pod) string {
	t.Helper()
	exp := int64(mesh.DefaultTokenExpirationSeconds)
	tr, err := c.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences:         []string{mesh.TokenAudience},
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	must(t, err)
	return tr.Status.Token
}

func tlsConfig(roots *x509.CertPool) *tls.Config {
	want := mesh.SPIFFEID(mesh.DefaultTrustDomain, mesh.ControlPlaneNamespace, mesh.ControlPlaneServiceAccount)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		// The SVID has a URI SAN and no DNS name: verified below instead.
		InsecureSkipVerify: true, //nolint:gosec // G402: chain and SPIFFE ID verified in VerifyPeerCertificate.
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no server certificate")
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				cert, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs[i] = cert
			}
			inter := x509.NewCertPool()
			for _, cert := range certs[1:] {
				inter.AddCert(cert)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			for _, u := range certs[0].URIs {
				if u.String() == want {
					return nil
				}
			}
			return fmt.Errorf("server is not %s", want)
		},
	}
}

// adsState is what a sidecar holds: the last resources of each type.
type adsState struct {
	listeners map[string]*listener.Listener
	routes    map[string]*route.RouteConfiguration
	clusters  map[string]*cluster.Cluster
	endpoints map[string]*endpoint.ClusterLoadAssignment
}

// adsClient is a raw SotW ADS client subscribing like the sidecar; its
// goroutine (owned by the test's cleanup) ACKs every response.
type adsClient struct {
	mu      sync.Mutex
	state   adsState
	n       int
	log     []string // one line per response
	last    time.Time
	changed chan struct{}
	stream  discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node    *core.Node
	failure error
}

func dialADS(ctx context.Context, t *testing.T, addr string, roots *x509.CertPool, token, nodeID string) *adsClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig(roots))))
	must(t, err)
	sctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token))
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
	must(t, err)
	a := &adsClient{
		stream: stream, node: &core.Node{Id: nodeID}, changed: make(chan struct{}, 1),
		state: adsState{
			listeners: map[string]*listener.Listener{}, routes: map[string]*route.RouteConfiguration{},
			clusters: map[string]*cluster.Cluster{}, endpoints: map[string]*endpoint.ClusterLoadAssignment{},
		},
	}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; _ = cc.Close() })
	for _, typ := range []string{resource.ClusterType, resource.ListenerType} {
		must(t, stream.Send(&discovery.DiscoveryRequest{Node: a.node, TypeUrl: typ}))
	}
	go func() {
		defer close(done)
		a.recvLoop()
	}()
	return a
}

func (a *adsClient) recvLoop() {
	nonces := map[string]string{}
	versions := map[string]string{}
	names := map[string][]string{}
	for {
		resp, err := a.stream.Recv()
		if err != nil {
			a.mu.Lock()
			a.failure = err
			a.mu.Unlock()
			return
		}
		a.mu.Lock()
		var eds []string
		wantRDS := false
		switch resp.TypeUrl {
		case resource.ClusterType:
			a.state.clusters = map[string]*cluster.Cluster{}
			for _, r := range resp.Resources {
				c := &cluster.Cluster{}
				if r.UnmarshalTo(c) == nil {
					a.state.clusters[c.Name] = c
					if c.GetType() == cluster.Cluster_EDS {
						eds = append(eds, c.Name)
					}
				}
			}
		case resource.EndpointType:
			for _, r := range resp.Resources {
				e := &endpoint.ClusterLoadAssignment{}
				if r.UnmarshalTo(e) == nil {
					a.state.endpoints[e.ClusterName] = e
				}
			}
		case resource.ListenerType:
			a.state.listeners = map[string]*listener.Listener{}
			for _, r := range resp.Resources {
				l := &listener.Listener{}
				if r.UnmarshalTo(l) == nil {
					a.state.listeners[l.Name] = l
				}
			}
			wantRDS = true
		case resource.RouteType:
			for _, r := range resp.Resources {
				rc := &route.RouteConfiguration{}
				if r.UnmarshalTo(rc) == nil {
					a.state.routes[rc.Name] = rc
				}
			}
		}
		a.n++
		a.last = time.Now()
		a.log = append(a.log, fmt.Sprintf("%s %s v%s (%d)", a.last.Format("15:04:05.000"), resp.TypeUrl[strings.LastIndex(resp.TypeUrl, ".")+1:], resp.VersionInfo, len(resp.Resources)))
		a.mu.Unlock()
		select {
		case a.changed <- struct{}{}:
		default:
		}
		nonces[resp.TypeUrl], versions[resp.TypeUrl] = resp.Nonce, resp.VersionInfo
		// ACK.
		if a.stream.Send(&discovery.DiscoveryRequest{
			Node: a.node, TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo,
			ResponseNonce: resp.Nonce, ResourceNames: names[resp.TypeUrl],
		}) != nil {
			return
		}
		sub := func(typ string, want []string) {
			if equalStrings(names[typ], want) && nonces[typ] != "" {
				return
			}
			names[typ] = want
			_ = a.stream.Send(&discovery.DiscoveryRequest{
				Node: a.node, TypeUrl: typ, VersionInfo: versions[typ],
				ResponseNonce: nonces[typ], ResourceNames: want,
			})
		}
		if resp.TypeUrl == resource.ClusterType {
			sub(resource.EndpointType, eds)
		}
		if wantRDS {
			sub(resource.RouteType, []string{"outbound"})
		}
	}
}

func (a *adsClient) responses() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// lines returns the log of the responses after the first n.
func (a *adsClient) lines(n int) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.log[n:]...)
}

func (a *adsClient) err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failure
}

// quiet waits until no response has arrived for d.
func (a *adsClient) quiet(ctx context.Context, t *testing.T, d time.Duration) {
	t.Helper()
	for ctx.Err() == nil {
		a.mu.Lock()
		since := time.Since(a.last)
		a.mu.Unlock()
		if since >= d {
			return
		}
		time.Sleep(d - since)
	}
}

func (a *adsClient) waitFor(ctx context.Context, t *testing.T, what string, cond func(*adsState) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	last := ""
	for {
		a.mu.Lock()
		ok, why := cond(&a.state)
		failure := a.failure
		a.mu.Unlock()
		if ok {
			return
		}
		last = why
		if failure != nil {
			t.Fatalf("waiting for %s: stream failed: %v (last: %s)", what, failure, last)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %s)", what, ctx.Err(), last)
		case <-a.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// adsRefusal opens a stream with token as nodeID and returns the status
// code the control plane closes it with.
func adsRefusal(ctx context.Context, t *testing.T, addr string, roots *x509.CertPool, token, nodeID string) codes.Code {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig(roots))))
	must(t, err)
	defer func() { _ = cc.Close() }()
	sctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), 10*time.Second)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
	if err != nil {
		return status.Code(err)
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: nodeID}, TypeUrl: resource.ClusterType}); err != nil && !errors.Is(err, io.EOF) {
		return status.Code(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return status.Code(err)
		}
		t.Errorf("refused stream got a response: %s with %d resources", resp.TypeUrl, len(resp.Resources))
	}
}

func health(cla *endpoint.ClusterLoadAssignment) map[string]core.HealthStatus {
	out := map[string]core.HealthStatus{}
	if cla == nil {
		return out
	}
	for _, l := range cla.Endpoints {
		for _, e := range l.LbEndpoints {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			out[net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))] = e.HealthStatus
		}
	}
	return out
}

func equalHealth(a, b map[string]core.HealthStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// watchedVersions lists every kind the kube registry watches and returns
// kind/namespace/name -> resourceVersion.
func watchedVersions(ctx context.Context, t *testing.T, c *kubeharness.Cluster) map[string]string {
	t.Helper()
	out := map[string]string{}
	add := func(kind string, items []metav1.Object) {
		for _, o := range items {
			out[kind+"/"+o.GetNamespace()+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	core := c.Client.CoreV1()
	svcs, err := core.Services("").List(ctx, metav1.ListOptions{})
	must(t, err)
	add("Service", objects(svcs.Items))
	pods, err := core.Pods("").List(ctx, metav1.ListOptions{})
	must(t, err)
	add("Pod", objects(pods.Items))
	nss, err := core.Namespaces().List(ctx, metav1.ListOptions{})
	must(t, err)
	add("Namespace", objects(nss.Items))
	sas, err := core.ServiceAccounts("").List(ctx, metav1.ListOptions{})
	must(t, err)
	add("ServiceAccount", objects(sas.Items))
	cms, err := core.ConfigMaps(mesh.ControlPlaneNamespace).List(ctx, metav1.ListOptions{})
	must(t, err)
	add("ConfigMap", objects(cms.Items))
	eps, err := c.Client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	must(t, err)
	add("EndpointSlice", objects(eps.Items))
	nps, err := c.Client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	must(t, err)
	add("NetworkPolicy", objects(nps.Items))
	for _, gvr := range []schema.GroupVersionResource{kube.GVRWorkloadEntry, kube.GVRTrafficPolicy, kube.GVRAuthorizationPolicy, kube.GVRExternalService} {
		l, err := c.Dynamic.Resource(gvr).Namespace("").List(ctx, metav1.ListOptions{})
		must(t, err)
		for i := range l.Items {
			add(gvr.Resource, []metav1.Object{&l.Items[i]})
		}
	}
	return out
}

func objects[T any, PT interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

// diffVersions names the keys whose versions differ ("" when none).
func diffVersions(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, ", ")
}
