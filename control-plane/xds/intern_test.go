package xds

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// TestRequestNamesAreShared: the resource names of every stream's requests
// reach go-control-plane (which keeps them for the stream's life) as one
// shared copy, not one per proxy.
func TestRequestNamesAreShared(t *testing.T) {
	st := newStatus(time.Now, func(context.Context, string) {}, func(string) {})
	const name = "outbound|8080||reviews.shop.svc.cluster.local"
	var sotw [2]*discovery.DiscoveryRequest
	for i := range sotw {
		sotw[i] = &discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{strings.Clone(name), "x" + strconv.Itoa(i)}}
		if err := st.OnStreamRequest(int64(i+1), sotw[i]); err != nil {
			t.Fatal(err)
		}
	}
	delta := &discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{strings.Clone(name)}}
	if err := st.OnStreamDeltaRequest(3, delta); err != nil {
		t.Fatal(err)
	}
	if got := sotw[1].ResourceNames[0]; got != name || !sameString(got, sotw[0].ResourceNames[0]) {
		t.Errorf("SotW requests of two streams name %q with two copies; want one", name)
	}
	if got := delta.ResourceNamesSubscribe[0]; got != name || !sameString(got, sotw[0].ResourceNames[0]) {
		t.Errorf("a delta subscription names %q with its own copy; want the shared one", name)
	}
	if sotw[0].ResourceNames[1] != "x0" || sotw[1].ResourceNames[1] != "x1" {
		t.Errorf("names changed: %q, %q", sotw[0].ResourceNames, sotw[1].ResourceNames)
	}
}

// TestInternerIsBounded: a client sending ever new names cannot grow the
// table past two generations; a name in use survives a rotation.
func TestInternerIsBounded(t *testing.T) {
	in := newInterner()
	kept := []string{strings.Clone("kept")}
	in.names(kept)
	for i := range 3 * internMaxNames {
		in.names([]string{"n" + strconv.Itoa(i)})
		if i%1000 == 0 {
			again := []string{strings.Clone("kept")}
			in.names(again)
			if !sameString(again[0], kept[0]) && i < internMaxNames {
				t.Fatalf("after %d names, %q got a new copy before any rotation", i, "kept")
			}
			kept = again
		}
	}
	if len(in.cur) > internMaxNames || len(in.old) > internMaxNames {
		t.Errorf("generations of %d and %d names; want at most %d each", len(in.cur), len(in.old), internMaxNames)
	}
	again := []string{strings.Clone("kept")}
	in.names(again)
	if !sameString(again[0], kept[0]) {
		t.Error("a name asked for in every generation lost its shared copy")
	}
	long := strings.Repeat("a", internMaxLen+1)
	names := []string{long}
	in.names(names)
	if _, ok := in.cur[long]; ok {
		t.Error("a name longer than internMaxLen was kept")
	}
}
