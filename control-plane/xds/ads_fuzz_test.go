package xds

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/weftmesh/weft/api/meshconfig"
)

// fuzzClient is the fuzzed stream's client for one type: its
// subscription and what it holds.
type fuzzClient struct {
	subscribed, wildcard, explicit bool
	names                          map[string]bool
	has                            map[string]string // name -> version (delta)
	last                           string            // nonce of the last response
	inFlight                       bool
	version                        string // of the last response
	sotw                           []string
	// caught is the snapshot version the server last answered the type
	// from (delta: with or without a response).
	caught string
	// absent: delta names the server said (removed_resources) the
	// client does not have, since they were last subscribed or sent.
	absent map[string]bool
}

// FuzzADSRequests drives one stream (SotW or delta, by the first byte)
// with requests made from the input, two bytes each: subscribe or
// unsubscribe a real, unknown or wildcard name of any type, ACK or NACK
// the last response, answer with a stale or malformed nonce, push another
// registry state; a delta type's first request may carry a name in
// initial_resource_versions (the client holds it from an earlier stream). It handles them as the stream's goroutine does (the
// request, then a flush), applies every response to a model of the
// client, and checks that nothing outside the subscription is sent, that
// responses carry the snapshot's version and, once the client has
// answered every response (with no NACK), that it holds exactly the
// snapshot's resources of its subscription (delta: at their versions, and
// every subscribed name the snapshot does not have was said to be
// removed). Types go out in the xDS order: a type is not answered while a
// type it depends on is subscribed and not answered from the snapshot's
// version.
func FuzzADSRequests(f *testing.F) {
	f.Add([]byte{1, 0, 0, 4, 0, 5, 0, 4, 0})
	f.Add([]byte{0, 0, 1, 0, 6, 4, 0, 5, 0, 1, 6, 4, 1})
	f.Add([]byte{1, 2, 1, 0, 1, 4, 1, 1, 1, 5, 0, 3, 1, 6, 1})
	f.Add([]byte{0, 2, 2, 4, 2, 0, 7, 5, 2, 4, 2, 3, 2})
	f.Add([]byte{1, 0, 11, 4, 11, 1, 11, 5, 1, 0, 11})
	f.Add([]byte{1, 4, 0, 0x32, 6, 4, 1, 0x14, 12, 4, 12, 5, 0, 4, 1})
	f.Add([]byte{1, 4, 0, 0x12, 11, 4, 11, 0x34, 7, 5, 1, 4, 7})
	const node = "order-1.shop"
	meshes := []string{meshYAML, meshYAML + payment2, strings.Replace(meshYAML, paymentService, "", 1)}
	// Every resource name of every mesh, and one that never exists.
	vocab := []string{"nope"}
	for _, m := range meshes {
		s := New(meshconfig.Default(), WithMaxConnecting(0))
		s.Update(parse(f, m))
		s.Push()
		s.nodeConnected(context.Background(), node)
		for _, items := range s.snaps.get(node).items {
			vocab = append(vocab, slices.Collect(maps.Keys(items))...)
		}
	}
	slices.Sort(vocab)
	vocab = slices.Compact(vocab)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 80 {
			return
		}
		delta := data[0]&1 == 1
		s := New(meshconfig.Default(), WithMaxConnecting(0))
		mesh := 0
		s.Update(parse(t, meshes[mesh]))
		s.Push()
		ctx := context.Background()
		st := &adsStream{s: s, id: 1, delta: delta, ctx: ctx, wake: make(chan struct{}, 1)}
		if err := s.status.open(ctx, streamKey{delta: delta, id: 1}); err != nil {
			t.Fatal(err)
		}
		var cl [numTypes]fuzzClient
		for i := range cl {
			cl[i].names, cl[i].has, cl[i].absent = map[string]bool{}, map[string]string{}, map[string]bool{}
		}
		nacked := false
		respond := func(i int, snap *snapshot) error {
			c := &cl[i]
			for _, j := range dependsOn[i] {
				if cl[j].subscribed && cl[j].caught != snap.versions[j] {
					t.Fatalf("%s answered from version %s while %s is at %q, the snapshot's %q", typeURLs[i], snap.versions[i], typeURLs[j], cl[j].caught, snap.versions[j])
				}
			}
			c.caught = snap.versions[i]
			if delta {
				resp, err := st.deltaResponse(i, snap)
				if err != nil || resp == nil {
					return err
				}
				for _, r := range resp.GetResources() {
					if !c.wildcard && !c.names[r.GetName()] {
						t.Fatalf("delta %s sent %q outside the subscription %v", typeURLs[i], r.GetName(), c.names)
					}
					if _, ok := snap.items[i][r.GetName()]; !ok {
						t.Fatalf("delta %s sent %q, not in the snapshot", typeURLs[i], r.GetName())
					}
					c.has[r.GetName()] = r.GetVersion()
					delete(c.absent, r.GetName())
				}
				for _, n := range resp.GetRemovedResources() {
					if _, ok := snap.items[i][n]; ok {
						t.Fatalf("delta %s removed %q, which the snapshot has", typeURLs[i], n)
					}
					if c.absent[n] {
						t.Fatalf("delta %s removed %q again, neither subscribed, unsubscribed nor sent since", typeURLs[i], n)
					}
					delete(c.has, n)
					c.absent[n] = true
				}
				c.version, c.last, c.inFlight = resp.GetSystemVersionInfo(), resp.GetNonce(), true
			} else {
				resp, err := st.sotwResponse(i, snap)
				if err != nil {
					return err
				}
				c.sotw = nil
				for _, a := range resp.GetResources() {
					m, err := a.UnmarshalNew()
					if err != nil {
						t.Fatal(err)
					}
					n := cache.GetResourceName(m)
					if !c.wildcard && !c.names[n] {
						t.Fatalf("SotW %s sent %q outside the subscription %v", typeURLs[i], n, c.names)
					}
					c.sotw = append(c.sotw, n)
				}
				slices.Sort(c.sotw)
				c.version, c.last, c.inFlight = resp.GetVersionInfo(), resp.GetNonce(), true
			}
			if c.version != snap.versions[i] {
				t.Fatalf("%s version %q, the snapshot's %q", typeURLs[i], c.version, snap.versions[i])
			}
			return nil
		}
		named := false
		// initial, when set, is what the next delta request of a type
		// not yet subscribed says the client has from an earlier stream.
		var initial map[string]string
		request := func(i int, nonce string, nack bool, sub, unsub []string) {
			c := &cl[i]
			var detail *rpcstatus.Status
			if nack {
				detail = &rpcstatus.Status{Message: "rejected"}
			}
			if c.inFlight && nonce == c.last {
				c.inFlight = false
				nacked = nacked || nack
			}
			var n *core.Node
			if !named {
				n, named = &core.Node{Id: node}, true
			}
			first := !c.subscribed
			c.subscribed = true
			var err error
			var have map[string]string
			if delta && first {
				have, c.has = initial, maps.Clone(initial)
				if c.has == nil {
					c.has = map[string]string{}
				}
			}
			initial = nil
			if delta {
				c.wildcard = c.wildcard || (first && len(sub) == 0)
				for _, x := range sub {
					if x == "*" {
						c.wildcard = true
					} else {
						c.names[x] = true
						delete(c.absent, x) // to be said again
					}
				}
				for _, x := range unsub {
					if x == "*" {
						c.wildcard = false
					} else {
						delete(c.names, x)
						delete(c.absent, x)
					}
				}
				if !c.wildcard {
					// The client forgets what it no longer subscribes to.
					maps.DeleteFunc(c.has, func(n, _ string) bool { return !c.names[n] })
				}
				err = st.deltaRequest(&discovery.DeltaDiscoveryRequest{
					Node: n, TypeUrl: typeURLs[i], ResponseNonce: nonce, ErrorDetail: detail,
					ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub, InitialResourceVersions: have,
				})
			} else {
				// A SotW request carries the whole subscription; a stale
				// one (ignored by the server) does not change it.
				names := maps.Clone(c.names)
				for _, x := range sub {
					names[x] = true
				}
				for _, x := range unsub {
					delete(names, x)
				}
				list := slices.Sorted(maps.Keys(names))
				if !c.inFlight && (first || nonce == c.last) {
					c.names = names
					c.wildcard = names["*"] || (len(list) == 0 && !c.explicit)
					c.explicit = c.explicit || len(list) > 0
					delete(c.names, "*")
				}
				err = st.sotwRequest(&discovery.DiscoveryRequest{
					Node: n, TypeUrl: typeURLs[i], ResponseNonce: nonce, ErrorDetail: detail,
					VersionInfo: c.version, ResourceNames: list,
				})
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := st.flush(respond); err != nil {
				t.Fatal(err)
			}
		}
		for op := range slices.Chunk(data[1:], 2) {
			if len(op) < 2 {
				break
			}
			i := int(op[1]) % numTypes
			name := vocab[int(op[1])/numTypes%len(vocab)]
			c := &cl[i]
			if op[0]&0x10 != 0 {
				// The next first request of a type carries the name as
				// held from an earlier stream: at the snapshot's version
				// (when it has it) or at another.
				v := "stale"
				if snap := s.snaps.get(node); snap != nil && op[0]&0x20 != 0 {
					vm, err := versionsOf(snap.items[i])
					if err != nil {
						t.Fatal(err)
					}
					if cur, ok := vm[name]; ok {
						v = cur
					}
				}
				initial = map[string]string{name: v}
			}
			switch op[0] % 8 {
			case 0:
				request(i, c.last, false, []string{name}, nil)
			case 1:
				request(i, c.last, false, nil, []string{name})
			case 2:
				request(i, c.last, false, []string{"*"}, nil)
			case 3:
				request(i, c.last, false, nil, []string{"*"})
			case 4:
				request(i, c.last, op[1]&0x80 != 0, nil, nil) // ACK or NACK
			case 5:
				mesh = (mesh + 1 + int(op[1])%2) % len(meshes)
				s.Update(parse(t, meshes[mesh]))
				s.Push()
				if err := st.flush(respond); err != nil {
					t.Fatal(err)
				}
			case 6: // an answer to an earlier response, or garbage
				stale := "x"
				if n, err := strconv.Atoi(c.last); err == nil && op[1]&1 == 0 {
					stale = strconv.Itoa(n - 1)
				}
				if stale != c.last {
					request(i, stale, false, nil, nil)
				}
			default:
				request(i, "", false, nil, nil) // no nonce
			}
		}
		// The client answers until nothing is in flight.
		for range 2 * numTypes {
			busy := false
			for i := range cl {
				if cl[i].inFlight {
					busy = true
					request(i, cl[i].last, false, nil, nil)
				}
			}
			if !busy {
				break
			}
		}
		if nacked || !named {
			return // a NACKing client keeps what it had; the server cannot know it
		}
		snap := s.snaps.get(node)
		for i := range cl {
			c := &cl[i]
			if !c.subscribed || c.inFlight {
				continue
			}
			want := map[string]string{}
			for n := range snap.items[i] {
				if c.wildcard || c.names[n] {
					want[n] = snap.versions[i]
				}
			}
			if delta {
				vm := snap.vmaps[i]
				got := map[string]string{}
				for n, v := range c.has {
					if c.wildcard || c.names[n] {
						got[n] = v
					}
				}
				for n := range want {
					want[n] = vm[n]
				}
				if !maps.Equal(got, want) {
					t.Fatalf("delta %s: the client holds %v, the snapshot has %v", typeURLs[i], got, want)
				}
				for n := range c.names {
					if _, ok := snap.items[i][n]; !ok && !c.absent[n] {
						t.Fatalf("delta %s: subscribed %q does not exist and was not said to be removed", typeURLs[i], n)
					}
				}
				continue
			}
			if c.version != snap.versions[i] || !slices.Equal(c.sotw, slices.Sorted(maps.Keys(want))) {
				t.Fatalf("SotW %s: the client holds %v at %q, the snapshot has %v at %q", typeURLs[i], c.sotw, c.version, slices.Sorted(maps.Keys(want)), snap.versions[i])
			}
		}
	})
}
