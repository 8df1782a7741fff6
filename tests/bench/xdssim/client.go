package xdssim

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// client is one simulated sidecar: one ADS stream (SotW or delta) that
// subscribes like weft-sidecar (CDS and LDS wildcard, EDS for the EDS
// clusters, RDS "outbound") and ACKs every response at once. It decodes
// only what it needs: resource names (from the wire, without unmarshalling
// the resources) and versions. Its counters are atomics read by the
// driver; its one goroutine (run) owns the stream.
type client struct {
	id    int
	node  *core.Node
	token string
	delta bool

	// Counters (atomics: the driver reads them while run writes).
	rxBytes   [5]atomic.Int64 // by type index
	edsAcks   atomic.Int64    // EDS responses ACKed
	edsAckNs  atomic.Int64    // time of the last EDS ACK (unix ns)
	edsVer    atomic.Uint64   // version of the last EDS ACKed
	readyNs   atomic.Int64    // when CDS, EDS, LDS and RDS were all ACKed (0 before)
	connected atomic.Bool
}

var simTypes = [...]string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType, resource.SecretType}

func typeIndex(t string) int {
	for i, s := range simTypes {
		if s == t {
			return i
		}
	}
	return 4
}

func newClient(id int, w Workload, ip, token string, delta bool) *client {
	md, _ := structpb.NewStruct(map[string]any{
		"namespace": w.Namespace, "workload": w.Name, "service_account": w.ServiceAccount, "ip": ip,
	})
	return &client{id: id, node: &core.Node{Id: w.NodeID(), Metadata: md}, token: token, delta: delta}
}

// run opens the stream on cc and serves it until ctx is done or the stream
// fails; it returns the stream's error (nil when ctx ended it).
func (c *client) run(ctx context.Context, cc grpc.ClientConnInterface) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	c.readyNs.Store(0)
	defer c.connected.Store(false)
	ads := discovery.NewAggregatedDiscoveryServiceClient(cc)
	if c.delta {
		return c.runDelta(ctx, ads)
	}
	return c.runSotW(ctx, ads)
}

// progress tracks the initial subscription: ready once each of the four
// types has been ACKed once.
type progress uint8

func (p *progress) acked(c *client, typ int) {
	*p |= 1 << typ
	if *p&0xf == 0xf && c.readyNs.Load() == 0 {
		c.readyNs.Store(time.Now().UnixNano())
	}
}

func (c *client) ackedEDS(version string) {
	v, _ := strconv.ParseUint(version, 10, 64)
	c.edsVer.Store(v)
	c.edsAckNs.Store(time.Now().UnixNano())
	c.edsAcks.Add(1)
}

func (c *client) runSotW(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient) error {
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	c.connected.Store(true)
	send := func(r *discovery.DiscoveryRequest) error { return st.Send(r) }
	first := true
	req := func(typ string, names []string) error {
		r := &discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names}
		if first {
			r.Node, first = c.node, false
		}
		return send(r)
	}
	if err := req(resource.ClusterType, nil); err != nil {
		return err
	}
	if err := req(resource.ListenerType, nil); err != nil {
		return err
	}
	names := map[string][]string{resource.RouteType: {"outbound"}}
	subscribed := map[string]bool{resource.ClusterType: true, resource.ListenerType: true}
	var p progress
	for {
		resp, err := st.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		typ := resp.GetTypeUrl()
		ti := typeIndex(typ)
		c.rxBytes[ti].Add(int64(proto.Size(resp)))
		if typ == resource.ClusterType {
			var eds []string
			for _, a := range resp.GetResources() {
				if n := wireName(a.GetValue()); strings.HasPrefix(n, "outbound|") {
					eds = append(eds, n)
				}
			}
			names[resource.EndpointType] = eds
		}
		// ACK.
		if err := send(&discovery.DiscoveryRequest{TypeUrl: typ, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: names[typ]}); err != nil {
			return err
		}
		if typ == resource.EndpointType {
			c.ackedEDS(resp.GetVersionInfo())
		}
		p.acked(c, ti)
		// Follow-up subscriptions, as the sidecar does.
		for _, t := range []string{resource.EndpointType, resource.RouteType} {
			if !subscribed[t] && ((t == resource.EndpointType && typ == resource.ClusterType) || (t == resource.RouteType && typ == resource.ListenerType)) {
				subscribed[t] = true
				if err := req(t, names[t]); err != nil {
					return err
				}
			}
		}
		if typ == resource.ClusterType && subscribed[resource.EndpointType] {
			// The EDS names may have changed with CDS: re-request.
			continue
		}
	}
}

func (c *client) runDelta(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient) error {
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	c.connected.Store(true)
	first := true
	sub := func(typ string, names []string) error {
		r := &discovery.DeltaDiscoveryRequest{TypeUrl: typ, ResourceNamesSubscribe: names}
		if first {
			r.Node, first = c.node, false
		}
		return st.Send(r)
	}
	if err := sub(resource.ClusterType, nil); err != nil {
		return err
	}
	if err := sub(resource.ListenerType, nil); err != nil {
		return err
	}
	edsSubscribed := map[string]bool{}
	rdsSubscribed := false
	var p progress
	for {
		resp, err := st.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		typ := resp.GetTypeUrl()
		ti := typeIndex(typ)
		c.rxBytes[ti].Add(int64(proto.Size(resp)))
		if err := st.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: typ, ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
		if typ == resource.EndpointType {
			c.ackedEDS(resp.GetSystemVersionInfo())
		}
		p.acked(c, ti)
		switch typ {
		case resource.ClusterType:
			var more []string
			for _, r := range resp.GetResources() {
				if n := r.GetName(); strings.HasPrefix(n, "outbound|") && !edsSubscribed[n] {
					edsSubscribed[n] = true
					more = append(more, n)
				}
			}
			if len(more) > 0 {
				if err := sub(resource.EndpointType, more); err != nil {
					return err
				}
			} else if p&(1<<1) == 0 {
				p.acked(c, 1) // no EDS clusters: nothing to wait for
			}
		case resource.ListenerType:
			if !rdsSubscribed {
				rdsSubscribed = true
				if err := sub(resource.RouteType, []string{"outbound"}); err != nil {
					return err
				}
			}
		}
	}
}

// wireName reads field 1 (name) of a Cluster, Listener, RouteConfiguration
// or Secret from its wire form, without unmarshalling the rest.
func wireName(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return ""
			}
			return string(v)
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return ""
		}
		b = b[m:]
	}
	return ""
}
