package xds

import (
	"bytes"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// syncBuffer is a log sink safe for the stream goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// wantEnd waits for a stream's end and checks its status.
func wantEnd(t *testing.T, resps <-chan struct{}, errp *error, code codes.Code, parts ...string) {
	t.Helper()
	select {
	case <-resps:
	case <-time.After(5 * time.Second):
		t.Fatalf("the stream did not end within 5s, want %v", code)
	}
	st, _ := grpcstatus.FromError(*errp)
	if st.Code() != code {
		t.Fatalf("stream ended with %v, want %v", *errp, code)
	}
	for _, p := range parts {
		if !strings.Contains(st.Message(), p) {
			t.Fatalf("status message %q does not name %q", st.Message(), p)
		}
	}
}

// drained closes when c's stream has ended (its responses read).
func drained[R any](c <-chan R) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range c { //nolint:revive // draining
		}
	}()
	return done
}

// TestSubscriptionLimit: past WithMaxSubscriptions names of one type, a
// stream ends with ResourceExhausted naming the type and the limit (and a
// log line); other streams go on.
func TestSubscriptionLimit(t *testing.T) {
	const limit = 4
	var logs syncBuffer
	s, cc := startServerWith(t, WithMaxSubscriptions(limit), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	s.Update(parse(t, meshYAML))
	s.Push()
	ctx := t.Context()
	other := newADSClient(t, ctx, cc, "order-1.shop")
	ob := &barrier{c: other}
	ob.pass()

	t.Run("SotW request", func(t *testing.T) {
		c := newADSClient(t, ctx, cc, "order-1.shop")
		c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: numbered("eds-", limit)})
		c.recv(resource.EndpointType) // at the limit: served
		c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, ResourceNames: numbered("c-", limit+1)})
		wantEnd(t, drained(c.resps), &c.err, codes.ResourceExhausted, resource.ClusterType, "limit of 4")
	})
	t.Run("delta requests", func(t *testing.T) {
		c := newDeltaClient(t, ctx, cc, "order-1.shop")
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: numbered("eds-", 3)})
		r := c.recv(resource.EndpointType)
		// Names already subscribed do not count twice.
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), ResourceNamesSubscribe: numbered("eds-", 4)})
		r = c.recv(resource.EndpointType)
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), ResourceNamesSubscribe: []string{"one-more"}})
		wantEnd(t, drained(c.resps), &c.err, codes.ResourceExhausted, resource.EndpointType, "limit of 4")
	})
	t.Run("delta initial_resource_versions", func(t *testing.T) {
		c := newDeltaClient(t, ctx, cc, "order-1.shop")
		have := map[string]string{}
		for _, n := range numbered("l-", limit+1) {
			have[n] = "v"
		}
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType, InitialResourceVersions: have})
		wantEnd(t, drained(c.resps), &c.err, codes.ResourceExhausted, resource.ListenerType, "limit of 4")
	})
	t.Run("delta subscribe and unsubscribe in one request at the limit", func(t *testing.T) {
		c := newDeltaClient(t, ctx, cc, "order-1.shop")
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: numbered("eds-", limit)})
		r := c.recv(resource.EndpointType)
		// One name replaces another: still limit names, served.
		c.send(&discovery.DeltaDiscoveryRequest{
			TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(),
			ResourceNamesSubscribe: []string{"eds-new"}, ResourceNamesUnsubscribe: []string{"eds-0"},
		})
		if r = c.recv(resource.EndpointType); !slices.Equal(r.GetRemovedResources(), []string{"eds-new"}) {
			t.Fatalf("removed %v, want [eds-new]", r.GetRemovedResources())
		}
	})
	t.Run("delta names unsubscribed under * while a response waits", func(t *testing.T) {
		// Names unsubscribed from under "*" are kept until the type's next
		// response (to answer them): they count, or a proxy that never
		// answers could make the stream keep names without bound.
		c := newDeltaClient(t, ctx, cc, "order-1.shop")
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType})
		c.recv(resource.EndpointType) // never answered
		first := numbered("a-", limit-1)
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: first})
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesUnsubscribe: first})
		// limit-1 names kept to be answered, limit-1 subscribed: over. (No
		// request after this one: the stream may be gone.)
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: numbered("b-", limit-1)})
		wantEnd(t, drained(c.resps), &c.err, codes.ResourceExhausted, resource.EndpointType, "limit of 4")
	})
	if got := logs.String(); strings.Count(got, "too many resource names") != 4 || !strings.Contains(got, "limit=4") {
		t.Fatalf("log:\n%s\nwant a line per refused request naming the limit", got)
	}
	// The other stream is served still.
	ob.pass()
}

// TestADSAdversarialRequests: what a peer may put in a request that the
// server must survive: each case either leaves the stream served (the
// barrier passes after it) or ends it with the status named.
func TestADSAdversarialRequests(t *testing.T) {
	huge := strings.Repeat("9", 1<<20)
	tests := []struct {
		name string
		req  func(c *adsClient) *discovery.DiscoveryRequest
		code codes.Code // OK: the stream goes on
		want []string   // in the status message
		// check runs after the barrier when the stream goes on.
		check func(t *testing.T, s *Server)
	}{{
		name: "a huge nonce is stale: ignored, its new subscription too",
		req: func(*adsClient) *discovery.DiscoveryRequest {
			return &discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: huge, ResourceNames: []string{"x"}}
		},
	}, {
		name: "an unknown type is not answered",
		req: func(*adsClient) *discovery.DiscoveryRequest {
			return &discovery.DiscoveryRequest{TypeUrl: "type.googleapis.com/no.such.Type", ResourceNames: numbered("x-", 1000)}
		},
	}, {
		name: "a huge version is no ACK",
		req: func(*adsClient) *discovery.DiscoveryRequest {
			return &discovery.DiscoveryRequest{TypeUrl: resource.SecretType, VersionInfo: huge}
		},
	}, {
		name: "a huge error_detail is cut for the log and the status",
		req: func(c *adsClient) *discovery.DiscoveryRequest {
			return &discovery.DiscoveryRequest{
				TypeUrl: resource.ClusterType, ResponseNonce: c.lastCDS.GetNonce(),
				VersionInfo: "0", ErrorDetail: &rpcstatus.Status{Code: 3, Message: huge},
			}
		},
		check: func(t *testing.T, s *Server) {
			p, _ := proxyStatus(s, "order-1.shop")
			if n := len(p.Versions[resource.ClusterType].Nack); n == 0 || n > maxDetailLen+3 {
				t.Fatalf("NACK detail kept: %d bytes, want 1..%d", n, maxDetailLen+3)
			}
		},
	}, {
		name: "another node on the stream",
		req: func(c *adsClient) *discovery.DiscoveryRequest {
			c.node = &core.Node{Id: "payment-1.shop"}
			return &discovery.DiscoveryRequest{TypeUrl: resource.ListenerType}
		},
		code: codes.InvalidArgument, want: []string{"order-1.shop", "payment-1.shop"},
	}, {
		name: "a huge node id",
		req: func(c *adsClient) *discovery.DiscoveryRequest {
			c.node = &core.Node{Id: huge}
			return &discovery.DiscoveryRequest{TypeUrl: resource.ListenerType}
		},
		code: codes.InvalidArgument, want: []string{"node id", "1024"},
	}, {
		name: "a huge resource name",
		req: func(*adsClient) *discovery.DiscoveryRequest {
			return &discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{"ok", huge}}
		},
		code: codes.InvalidArgument, want: []string{resource.EndpointType, "1024"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, cc := startServer(t)
			s.Update(parse(t, meshYAML))
			s.Push()
			c := newADSClient(t, t.Context(), cc, "order-1.shop")
			b := &barrier{c: c}
			b.pass()
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
			c.lastCDS = c.recv(resource.ClusterType)
			c.send(tt.req(c))
			if tt.code != codes.OK {
				wantEnd(t, drained(c.resps), &c.err, tt.code, tt.want...)
				return
			}
			c.node = &core.Node{Id: "order-1.shop"}
			b.pass()
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

// TestDeltaInitialVersionsBounded: a first delta request's
// initial_resource_versions, kept until the type's first response, name
// resources and versions no longer than maxNameLen, as a subscription
// does; a longer one ends the stream (InvalidArgument).
func TestDeltaInitialVersionsBounded(t *testing.T) {
	huge := strings.Repeat("9", 1<<20)
	for _, have := range []map[string]string{{huge: "v"}, {"c-0": huge}} {
		s, cc := startServer(t)
		s.Update(parse(t, meshYAML))
		s.Push()
		c := newDeltaClient(t, t.Context(), cc, "order-1.shop")
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, InitialResourceVersions: have})
		wantEnd(t, drained(c.resps), &c.err, codes.InvalidArgument, resource.ClusterType, "1024")
	}
}
