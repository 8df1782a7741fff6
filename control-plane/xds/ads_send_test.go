package xds

import (
	"context"
	"errors"
	"io"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/api/meshconfig"
)

// fakeStream is a server side of an ADS stream whose Send the test
// decides (a real stream's Send fails only when its transport does).
type fakeStream[Req, Res any] struct {
	grpc.ServerStream // nil: only Context, Recv and Send are used
	ctx               context.Context
	reqs              chan *Req
	send              func(*Res) error
}

func (f *fakeStream[Req, Res]) Context() context.Context { return f.ctx }

func (f *fakeStream[Req, Res]) Recv() (*Req, error) {
	r, ok := <-f.reqs
	if !ok {
		return nil, io.EOF
	}
	return r, nil
}

func (f *fakeStream[Req, Res]) Send(r *Res) error { return f.send(r) }

// TestResponseRecordedAfterSend: a response is "sent" in the status and
// counted by the observer once Send returned, and not at all when Send
// failed.
func TestResponseRecordedAfterSend(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "SotW", true: "delta"}[delta], func(t *testing.T) {
			rec := newRecorder()
			s := New(meshconfig.Default(), WithObserver(rec), WithMaxConnecting(0))
			s.Update(parse(t, meshYAML))
			s.Push()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			sendErr := errors.New("transport gone")
			// During Send: what the status and the observer say of it.
			var duringSent string
			var duringCount int
			send := func(typeURL string) error {
				p, _ := proxyStatus(s, "order-1.shop")
				sent, _, _ := rec.snapshot()
				duringSent, duringCount = p.Versions[typeURL].Sent, sent[typeURL]
				if typeURL == resource.EndpointType {
					return sendErr
				}
				return nil
			}
			done := make(chan error, 1)
			var sendReq func(typeURL string)
			if delta {
				fs := &fakeStream[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]{
					ctx: ctx, reqs: make(chan *discovery.DeltaDiscoveryRequest),
					send: func(r *discovery.DeltaDiscoveryResponse) error { return send(r.GetTypeUrl()) },
				}
				go func() { done <- (ads{s}).DeltaAggregatedResources(fs) }()
				node := &core.Node{Id: "order-1.shop"}
				sendReq = func(typeURL string) {
					fs.reqs <- &discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL}
				}
			} else {
				fs := &fakeStream[discovery.DiscoveryRequest, discovery.DiscoveryResponse]{
					ctx: ctx, reqs: make(chan *discovery.DiscoveryRequest),
					send: func(r *discovery.DiscoveryResponse) error { return send(r.GetTypeUrl()) },
				}
				go func() { done <- (ads{s}).StreamAggregatedResources(fs) }()
				sendReq = func(typeURL string) {
					fs.reqs <- &discovery.DiscoveryRequest{Node: &core.Node{Id: "order-1.shop"}, TypeUrl: typeURL}
				}
			}
			sendReq(resource.ClusterType)
			waitFor(t, "CDS recorded as sent", func() bool {
				p, _ := proxyStatus(s, "order-1.shop")
				return p.Versions[resource.ClusterType].Sent == "1"
			})
			if duringSent != "" || duringCount != 0 {
				t.Fatalf("during Send the status said sent %q and the observer counted %d; want nothing before it returned", duringSent, duringCount)
			}
			sendReq(resource.EndpointType)
			if err := <-done; !errors.Is(err, sendErr) {
				t.Fatalf("stream ended with %v, want the Send error", err)
			}
			if sent, _, _ := rec.snapshot(); sent[resource.EndpointType] != 0 || sent[resource.ClusterType] != 1 {
				t.Fatalf("observer counted %v, want one CDS response and no EDS (its Send failed)", sent)
			}
		})
	}
}
