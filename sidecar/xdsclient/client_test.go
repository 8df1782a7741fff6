package xdsclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

const (
	nodeIP   = "127.0.0.10"
	peerIP   = "127.0.0.11"
	wait     = 5 * time.Second
	appPort  = 8080
	svcPort  = 8080
	svc, ns  = "payment", "shop"
	workload = "order"
)

var (
	nodeID         = mesh.NodeID(workload, ns)
	paymentCluster = mesh.OutboundClusterName(svcPort, mesh.ServiceHost(svc, ns, mesh.DefaultClusterDomain))
)

func good() xdstest.Resources {
	return xdstest.Resources{
		Listeners: []*listener.Listener{xdstest.OutboundListener(nodeIP), xdstest.InboundListener(nodeIP, appPort)},
		Routes:    []*route.RouteConfiguration{xdstest.OutboundRoute(xdstest.ServiceVirtualHost(svc, ns, svcPort, true))},
		Clusters:  []*cluster.Cluster{xdstest.OutboundCluster(svc, ns, svcPort), xdstest.InboundCluster(nodeIP, appPort)},
		Endpoints: []*endpoint.ClusterLoadAssignment{
			xdstest.Assignment(paymentCluster, xdstest.Endpoint{IP: peerIP, Port: appPort, TunnelPort: mesh.PortInbound, Workload: "payment.shop"}),
		},
	}
}

type harness struct {
	t       *testing.T
	srv     *xdstest.Server
	client  *xdsclient.Client
	updates chan *xdsclient.Snapshot
	cancel  context.CancelFunc
	done    chan error
}

func start(t *testing.T, opts ...xdsclient.Option) *harness {
	t.Helper()
	h := &harness{t: t, srv: xdstest.Start(t, "127.0.0.1:0"), updates: make(chan *xdsclient.Snapshot, 100)}
	opts = append([]xdsclient.Option{
		xdsclient.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		xdsclient.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		xdsclient.WithUpdateHandler(func(s *xdsclient.Snapshot) { h.updates <- s }),
	}, opts...)
	c, err := xdsclient.New(h.srv.Addr, xdsclient.Node{Workload: workload, Namespace: ns, ServiceAccount: "order-sa", IP: nodeIP}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.client = c
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- c.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		h.t.Error("Run did not return after cancel")
	}
}

// update waits for a published snapshot whose versions satisfy ok.
func (h *harness) update(ok func(*xdsclient.Snapshot) bool) *xdsclient.Snapshot {
	h.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case s := <-h.updates:
			if ok(s) {
				return s
			}
		case <-timeout:
			h.t.Fatal("no matching snapshot published")
			return nil
		}
	}
}

func allAt(v string) func(*xdsclient.Snapshot) bool {
	return func(s *xdsclient.Snapshot) bool {
		return s.Versions == xdsclient.Versions{Listeners: v, Routes: v, Clusters: v, Endpoints: v}
	}
}

func TestFirstConfigAcked(t *testing.T) {
	h := start(t)
	h.srv.Set(nodeID, "1", good())

	select {
	case <-h.client.Ready():
	case <-time.After(wait):
		t.Fatal("client not ready")
	}
	s := h.update(allAt("1"))
	if !s.Complete {
		t.Error("first published snapshot is not complete")
	}
	for _, typ := range []string{xdsclient.TypeCluster, xdsclient.TypeEndpoint, xdsclient.TypeListener, xdsclient.TypeRoute} {
		h.srv.WaitRequest(0, wait, xdstest.ACK(typ, "1"))
	}

	// The first request names the node as the contract says.
	first := h.srv.Requests()[0]
	if got := first.GetNode().GetId(); got != nodeID {
		t.Errorf("node id = %q, want %q", got, nodeID)
	}
	md := first.GetNode().GetMetadata().GetFields()
	for k, want := range map[string]string{"namespace": ns, "workload": workload, "service_account": "order-sa", "ip": nodeIP} {
		if got := md[k].GetStringValue(); got != want {
			t.Errorf("node metadata %s = %q, want %q", k, got, want)
		}
	}
	if got := first.GetTypeUrl(); got != xdsclient.TypeCluster {
		t.Errorf("first request is for %s, want clusters first", got)
	}

	out := s.Listeners[mesh.ListenerOutbound]
	if out == nil || out.Address != nodeIP+":15001" || len(out.Chains) != 1 || out.Chains[0].RouteName != mesh.RouteOutbound {
		t.Errorf("outbound listener = %+v", out)
	}
	in := s.Listeners[mesh.ListenerInbound]
	if in == nil || in.Address != nodeIP+":15006" || in.Chains[0].DestinationPort != appPort || in.Chains[0].Route == nil {
		t.Errorf("inbound listener = %+v", in)
	}
	as := s.Endpoints[paymentCluster]
	if as == nil || len(as.Endpoints) != 1 || as.Endpoints[0].TunnelPort != mesh.PortInbound || as.Endpoints[0].IP != peerIP {
		t.Errorf("endpoints = %+v", as)
	}
	if s.Clusters[mesh.InboundClusterName(appPort)].Static == nil {
		t.Error("inbound cluster has no static assignment")
	}

	st := h.client.Status()
	if !st.Connected || !st.Ready || st.LastNACK != nil {
		t.Errorf("status = %+v, last NACK %+v", st, st.LastNACK)
	}
	for _, typ := range []string{xdsclient.TypeCluster, xdsclient.TypeEndpoint, xdsclient.TypeListener, xdsclient.TypeRoute} {
		if st.Acked[typ] != "1" {
			t.Errorf("status acked[%s] = %q, want 1", typ, st.Acked[typ])
		}
	}
	if h.client.Snapshot() != s {
		t.Error("Snapshot() is not the published snapshot")
	}
}

func TestBadConfigNACKedLastGoodKept(t *testing.T) {
	tests := []struct {
		name    string
		typeURL string
		break_  func(*xdstest.Resources)
		reason  []string
	}{
		{
			name:    "route references a missing cluster",
			typeURL: xdsclient.TypeRoute,
			break_: func(r *xdstest.Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0] = xdstest.PrefixRoute("/", "outbound|9999||nope.shop.svc.cluster.local")
			},
			reason: []string{`route "outbound"`, `cluster "outbound|9999||nope.shop.svc.cluster.local" not found`},
		},
		{
			name:    "cluster fails the PGV rules",
			typeURL: xdsclient.TypeCluster,
			break_: func(r *xdstest.Resources) {
				r.Clusters[0].ConnectTimeout = durationpb.New(-time.Second)
			},
			reason: []string{`cluster "` + paymentCluster + `"`, "connect_timeout"},
		},
		{
			name:    "listener with an unsupported required http filter",
			typeURL: xdsclient.TypeListener,
			break_: func(r *xdstest.Resources) {
				l := r.Listeners[0]
				m := &hcm.HttpConnectionManager{}
				if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(m); err != nil {
					t.Fatal(err)
				}
				rbac, _ := anypb.New(wrapperspb.String("pretend rbac"))
				m.HttpFilters = append([]*hcm.HttpFilter{{Name: "envoy.filters.http.rbac", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: rbac}}}, m.HttpFilters...)
				a, _ := anypb.New(m)
				l.FilterChains[0].Filters[0].ConfigType = &listener.Filter_TypedConfig{TypedConfig: a}
			},
			reason: []string{`listener "outbound"`, "unsupported filter"},
		},
		{
			name:    "endpoint with a host name",
			typeURL: xdsclient.TypeEndpoint,
			break_: func(r *xdstest.Resources) {
				r.Endpoints[0] = xdstest.Assignment(paymentCluster, xdstest.Endpoint{IP: "payment.example", Port: 80})
			},
			reason: []string{`endpoints "` + paymentCluster + `"`, "not an IP address"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			h.srv.Set(nodeID, "1", good())
			h.update(allAt("1"))

			bad := good()
			tc.break_(&bad)
			mark := h.srv.Mark()
			h.srv.Set(nodeID, "2", bad)
			nack := h.srv.WaitRequest(mark, wait, xdstest.NACK(tc.typeURL))
			if nack.GetVersionInfo() != "1" {
				t.Errorf("NACK version_info = %q, want the last good version 1", nack.GetVersionInfo())
			}
			msg := nack.GetErrorDetail().GetMessage()
			for _, want := range tc.reason {
				if !strings.Contains(msg, want) {
					t.Errorf("NACK reason %q does not contain %q", msg, want)
				}
			}
			// The last good config stays.
			s := h.client.Snapshot()
			switch tc.typeURL {
			case xdsclient.TypeRoute:
				if s.Versions.Routes != "1" || xdsclient.RouteClusters(s.Routes[mesh.RouteOutbound])[0] != paymentCluster {
					t.Errorf("routes changed after NACK: version %q", s.Versions.Routes)
				}
			case xdsclient.TypeCluster:
				if s.Versions.Clusters != "1" || s.Clusters[paymentCluster].ConnectTimeout != mesh.DefaultConnectTimeout {
					t.Errorf("clusters changed after NACK: version %q", s.Versions.Clusters)
				}
			case xdsclient.TypeListener:
				if s.Versions.Listeners != "1" {
					t.Errorf("listeners changed after NACK: version %q", s.Versions.Listeners)
				}
			case xdsclient.TypeEndpoint:
				if s.Versions.Endpoints != "1" || s.Endpoints[paymentCluster].Endpoints[0].IP != peerIP {
					t.Errorf("endpoints changed after NACK: version %q", s.Versions.Endpoints)
				}
			}
			st := h.client.Status()
			if st.LastNACK == nil || st.LastNACK.TypeURL != tc.typeURL || st.LastNACK.Version != "2" || st.Acked[tc.typeURL] != "1" {
				t.Errorf("status after NACK = %+v (last NACK %+v)", st, st.LastNACK)
			}

			// The snapshot cache resends a rejected version at once; the
			// client must not spin with it.
			time.Sleep(time.Second)
			n := 0
			for _, r := range h.srv.Requests()[mark:] {
				if r.GetTypeUrl() == tc.typeURL && r.GetErrorDetail() != nil {
					n++
				}
			}
			if n > 6 {
				t.Errorf("%d NACKs of the same version within a second: the NACK loop is not damped", n)
			}

			// A fixed version is accepted.
			mark = h.srv.Mark()
			h.srv.Set(nodeID, "3", good())
			h.srv.WaitRequest(mark, wait, xdstest.ACK(tc.typeURL, "3"))
			h.update(func(s *xdsclient.Snapshot) bool {
				switch tc.typeURL {
				case xdsclient.TypeRoute:
					return s.Versions.Routes == "3"
				case xdsclient.TypeCluster:
					return s.Versions.Clusters == "3"
				case xdsclient.TypeListener:
					return s.Versions.Listeners == "3"
				}
				return s.Versions.Endpoints == "3"
			})
		})
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	h := start(t)
	h.srv.Set(nodeID, "1", good())
	h.update(allAt("1"))

	mark := h.srv.Mark()
	h.srv.Stop()
	deadline := time.Now().Add(wait)
	for h.client.Status().Connected {
		if time.Now().After(deadline) {
			t.Fatal("client still reports connected after the server was killed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Disconnected: the last good config is still there.
	if s := h.client.Snapshot(); s.Versions.Listeners != "1" || len(s.Clusters) != 2 {
		t.Fatalf("snapshot while disconnected = %+v", s.Versions)
	}
	if st := h.client.Status(); st.LastError == "" || !st.Ready {
		t.Errorf("status while disconnected = %+v", st)
	}

	h.srv.Restart()
	next := good()
	next.Endpoints[0] = xdstest.Assignment(paymentCluster,
		xdstest.Endpoint{IP: peerIP, Port: appPort, TunnelPort: mesh.PortInbound},
		xdstest.Endpoint{IP: "127.0.0.12", Port: appPort, TunnelPort: mesh.PortInbound})
	h.srv.Set(nodeID, "2", next)

	// The new stream resumes from the last ACKed versions.
	for _, typ := range []string{xdsclient.TypeCluster, xdsclient.TypeEndpoint, xdsclient.TypeListener, xdsclient.TypeRoute} {
		r := h.srv.WaitRequest(mark, wait, func(r *discovery.DiscoveryRequest) bool {
			return r.GetTypeUrl() == typ && r.GetResponseNonce() == ""
		})
		if r.GetVersionInfo() != "1" {
			t.Errorf("%s: first request on the new stream has version %q, want 1", typ, r.GetVersionInfo())
		}
	}
	s := h.update(allAt("2"))
	if n := len(s.Endpoints[paymentCluster].Endpoints); n != 2 {
		t.Errorf("after reconnect: %d endpoints, want 2", n)
	}
	if !h.client.Status().Connected {
		t.Error("status not connected after reconnect")
	}
}

func TestValidatorRejects(t *testing.T) {
	reject := errors.New("data path says no")
	h := start(t, xdsclient.WithValidator(func(s *xdsclient.Snapshot) error {
		if s.Versions.Clusters == "2" {
			return reject
		}
		return nil
	}))
	h.srv.Set(nodeID, "1", good())
	h.update(allAt("1"))
	mark := h.srv.Mark()
	h.srv.Set(nodeID, "2", good())
	nack := h.srv.WaitRequest(mark, wait, xdstest.NACK(xdsclient.TypeCluster))
	if !strings.Contains(nack.GetErrorDetail().GetMessage(), reject.Error()) {
		t.Errorf("NACK reason = %q", nack.GetErrorDetail().GetMessage())
	}
	if v := h.client.Snapshot().Versions.Clusters; v != "1" {
		t.Errorf("clusters version = %q, want 1", v)
	}
}

func TestWarmingTimeout(t *testing.T) {
	h := start(t, xdsclient.WithWarmingTimeout(300*time.Millisecond))
	r := good()
	r.Endpoints = nil // the EDS cluster's assignment never comes
	h.srv.Set(nodeID, "1", r)
	began := time.Now()
	select {
	case <-h.client.Ready():
	case <-time.After(wait):
		t.Fatal("not ready after the warming timeout")
	}
	if d := time.Since(began); d < 250*time.Millisecond {
		t.Errorf("ready after %v, before the warming timeout", d)
	}
	s := h.client.Snapshot()
	if s.Complete || s.Endpoints[paymentCluster] != nil || s.Listeners[mesh.ListenerOutbound] == nil {
		t.Errorf("snapshot = %+v", s)
	}
}

func TestHoldsIncompleteUpdate(t *testing.T) {
	h := start(t, xdsclient.WithWarmingTimeout(time.Hour))
	h.srv.Set(nodeID, "1", good())
	h.update(allAt("1"))

	// v2 adds a cluster whose endpoints come only with v3: v2 is accepted
	// but not published, so the data path never sees a cluster without
	// endpoints.
	r2 := good()
	r2.Clusters = append(r2.Clusters, xdstest.OutboundCluster("inventory", ns, 9090))
	r2.Routes[0].VirtualHosts = append(r2.Routes[0].VirtualHosts, xdstest.ServiceVirtualHost("inventory", ns, 9090, true))
	mark := h.srv.Mark()
	h.srv.Set(nodeID, "2", r2)
	h.srv.WaitRequest(mark, wait, xdstest.ACK(xdsclient.TypeCluster, "2"))
	invCluster := mesh.OutboundClusterName(9090, mesh.ServiceHost("inventory", ns, mesh.DefaultClusterDomain))
	// Types may arrive in any order; whatever is published is complete.
	quiet := time.After(200 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case s := <-h.updates:
			if !s.Complete || (s.Clusters[invCluster] != nil && s.Endpoints[invCluster] == nil) {
				t.Fatalf("published incomplete snapshot %+v", s.Versions)
			}
		case <-quiet:
			waiting = false
		}
	}
	if s := h.client.Snapshot(); s.Clusters[invCluster] == nil || s.Complete {
		t.Fatalf("accepted snapshot %+v: want clusters v2 accepted and incomplete", s.Versions)
	}
	r3 := good()
	r3.Clusters, r3.Routes = r2.Clusters, r2.Routes
	r3.Endpoints = append(r3.Endpoints, xdstest.Assignment(invCluster, xdstest.Endpoint{IP: peerIP, Port: 9090}))
	h.srv.Set(nodeID, "3", r3)
	s := h.update(func(s *xdsclient.Snapshot) bool { return s.Complete && s.Endpoints[invCluster] != nil })
	if len(s.Routes[mesh.RouteOutbound].GetVirtualHosts()) != 2 {
		t.Errorf("routes = %v", s.Routes)
	}
}

// Without WithOrderedADS the server may send a push's routes before its
// clusters: such routes wait for the clusters instead of being NACKed, and
// are NACKed when the clusters never come.
func TestRoutesBeforeTheirClusters(t *testing.T) {
	h := start(t)
	h.srv.SetVersions(nodeID, xdstest.Versions{Listeners: "1", Routes: "1", Clusters: "1", Endpoints: "1"}, good())
	h.update(allAt("1"))

	inv := mesh.OutboundClusterName(9090, mesh.ServiceHost("inventory", ns, mesh.DefaultClusterDomain))
	withInv := good()
	withInv.Routes[0].VirtualHosts = append(withInv.Routes[0].VirtualHosts, xdstest.ServiceVirtualHost("inventory", ns, 9090, true))
	mark := h.srv.Mark()
	// Routes v2 name a cluster that only clusters v2 will bring.
	h.srv.SetVersions(nodeID, xdstest.Versions{Listeners: "1", Routes: "2", Clusters: "1", Endpoints: "1"}, withInv)
	time.Sleep(300 * time.Millisecond)
	withInv.Clusters = append(withInv.Clusters, xdstest.OutboundCluster("inventory", ns, 9090))
	withInv.Endpoints = append(withInv.Endpoints, xdstest.Assignment(inv, xdstest.Endpoint{IP: peerIP, Port: 9090}))
	h.srv.SetVersions(nodeID, xdstest.Versions{Listeners: "1", Routes: "2", Clusters: "2", Endpoints: "2"}, withInv)
	h.srv.WaitRequest(mark, wait, xdstest.ACK(xdsclient.TypeRoute, "2"))
	for _, r := range h.srv.Requests()[mark:] {
		if r.GetErrorDetail() != nil {
			t.Fatalf("NACK while the clusters were on their way: %s", r.GetErrorDetail().GetMessage())
		}
	}
	s := h.update(func(s *xdsclient.Snapshot) bool { return s.Versions.Routes == "2" })
	if !s.Complete || s.Clusters[inv] == nil || s.Endpoints[inv] == nil {
		t.Errorf("snapshot = %+v", s.Versions)
	}

	// Routes v3 name a cluster that never comes: NACKed after the hold.
	ghost := good()
	ghost.Clusters, ghost.Endpoints = withInv.Clusters, withInv.Endpoints
	ghost.Routes[0].VirtualHosts = append(ghost.Routes[0].VirtualHosts, xdstest.ServiceVirtualHost("ghost", ns, 80, true))
	mark = h.srv.Mark()
	began := time.Now()
	h.srv.SetVersions(nodeID, xdstest.Versions{Listeners: "1", Routes: "3", Clusters: "2", Endpoints: "2"}, ghost)
	nack := h.srv.WaitRequest(mark, wait, xdstest.NACK(xdsclient.TypeRoute))
	if d := time.Since(began); d < time.Second {
		t.Errorf("NACKed after %v, before the hold ended", d)
	}
	if msg := nack.GetErrorDetail().GetMessage(); !strings.Contains(msg, `cluster "outbound|80||ghost.shop.svc.cluster.local" not found`) {
		t.Errorf("NACK reason = %q", msg)
	}
	if v := h.client.Snapshot().Versions.Routes; v != "2" {
		t.Errorf("routes version = %q, want 2", v)
	}
}
