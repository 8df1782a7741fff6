package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestGolden translates every testdata/<case>.yaml for each of its
// workloads and compares with testdata/<case>/<node id>.json after decoding
// both (go test ./translate -update rewrites them).
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			st, err := file.Parse(in, data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			dir := filepath.Join("testdata", name)
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range st.Workloads {
				t.Run(w.NodeID(), func(t *testing.T) {
					got, err := Build(st, w, meshconfig.Default())
					if err != nil {
						t.Fatalf("Build: %v", err)
					}
					path := filepath.Join(dir, w.NodeID()+".json")
					if *update {
						if err := os.WriteFile(path, encodeGolden(t, got), 0o644); err != nil {
							t.Fatal(err)
						}
						return
					}
					raw, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("%v (run go test ./translate -update)", err)
					}
					want := decodeGolden(t, raw)
					if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
						t.Errorf("Build(%s) mismatch with %s (-want +got):\n%s", w.NodeID(), path, diff)
					}
				})
			}
		})
	}
}

type goldenFile struct {
	Listeners []json.RawMessage `json:"listeners"`
	Routes    []json.RawMessage `json:"routes"`
	Clusters  []json.RawMessage `json:"clusters"`
	Endpoints []json.RawMessage `json:"endpoints"`
}

func encodeGolden(t *testing.T, r *Resources) []byte {
	t.Helper()
	enc := func(ms []proto.Message) []json.RawMessage {
		out := []json.RawMessage{}
		for _, m := range ms {
			b, err := protojson.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	g := goldenFile{
		Listeners: enc(asMessages(r.Listeners)),
		Routes:    enc(asMessages(r.Routes)),
		Clusters:  enc(asMessages(r.Clusters)),
		Endpoints: enc(asMessages(r.Endpoints)),
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func asMessages[T proto.Message](s []T) []proto.Message {
	out := make([]proto.Message, len(s))
	for i, m := range s {
		out[i] = m
	}
	return out
}

func decodeGolden(t *testing.T, raw []byte) *Resources {
	t.Helper()
	var g goldenFile
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	r := &Resources{}
	r.Listeners = decodeAll(t, g.Listeners, func() *listener.Listener { return &listener.Listener{} })
	r.Routes = decodeAll(t, g.Routes, func() *route.RouteConfiguration { return &route.RouteConfiguration{} })
	r.Clusters = decodeAll(t, g.Clusters, func() *cluster.Cluster { return &cluster.Cluster{} })
	r.Endpoints = decodeAll(t, g.Endpoints, func() *endpoint.ClusterLoadAssignment { return &endpoint.ClusterLoadAssignment{} })
	return r
}

func decodeAll[T proto.Message](t *testing.T, raws []json.RawMessage, mk func() T) []T {
	t.Helper()
	var out []T
	for _, raw := range raws {
		m := mk()
		if err := protojson.Unmarshal(raw, m); err != nil {
			t.Fatalf("golden: %v", err)
		}
		out = append(out, m)
	}
	return out
}
