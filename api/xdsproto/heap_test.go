package xdsproto_test

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/api/xdsproto"
	tlistener "github.com/weftmesh/weft/api/xdsproto/envoy/config/listener/v3"
	troute "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"
	trbacfilter "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/http/rbac/v3"
	ttls "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/transport_sockets/tls/v3"
)

// heapModeEnv selects what the child process of TestValidateResidentHeap
// measures: "table" (Validate) or "descriptor" (the rules read from the
// descriptors' options for every field Validate visits, as Validate did
// before the generated table, then Validate).
const heapModeEnv = "XDSPROTO_HEAP_MODE"

// TestValidateResidentHeap: validating a representative configuration (a
// mesh cluster, a route, a listener, RBAC and TLS) leaves far less live
// heap behind with the generated rules table than reading the rules from
// the descriptors' options, which protobuf-go decodes into a FieldOptions
// (with an extension map) per field and keeps. Each way runs in a fresh
// process, so that neither finds the other's caches.
func TestValidateResidentHeap(t *testing.T) {
	if mode := os.Getenv(heapModeEnv); mode != "" {
		heapChild(t, mode)
		return
	}
	grown := map[string]int64{}
	for _, mode := range []string{"table", "descriptor"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestValidateResidentHeap$", "-test.count=1", "-test.v") //nolint:gosec // the test binary itself
		cmd.Env = append(os.Environ(), heapModeEnv+"="+mode)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, out)
		}
		_, after, ok := strings.Cut(string(out), "heap-grown-bytes=")
		if !ok {
			t.Fatalf("%s: no figure in\n%s", mode, out)
		}
		n, err := strconv.ParseInt(strings.Fields(after)[0], 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		grown[mode] = n
	}
	t.Logf("live heap left by validating the configuration: table %d bytes, descriptor options %d bytes", grown["table"], grown["descriptor"])
	// Measured 64 and 433 KB: what the table way leaves is the trimmed
	// messages' own lazy state (their oneofs' field lists), which the
	// descriptor way leaves too.
	if grown["table"]*4 > grown["descriptor"] {
		t.Errorf("the rules table leaves %d bytes, the descriptor options %d: want under a quarter", grown["table"], grown["descriptor"])
	}
}

func heapChild(t *testing.T, mode string) {
	var msgs []proto.Message
	msgs = append(msgs, meshCluster(t))
	for _, p := range []struct {
		envoy   proto.Message
		trimmed proto.Message
	}{
		{goodRoute(), &troute.RouteConfiguration{}},
		{goodListener(), &tlistener.Listener{}},
		{goodRBAC(), &trbacfilter.RBAC{}},
		{goodTLS(), &ttls.DownstreamTlsContext{}},
	} {
		a, err := anypb.New(p.envoy)
		if err != nil {
			t.Fatal(err)
		}
		if err := xdsproto.UnmarshalAny(&anypb.Any{TypeUrl: xdsproto.TypeURL(p.trimmed), Value: a.GetValue()}, p.trimmed); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, p.trimmed)
	}
	before := liveHeap()
	for _, m := range msgs {
		if mode == "descriptor" {
			readDescriptorRules(m.ProtoReflect())
		}
		if err := xdsproto.Validate(m); err != nil {
			t.Fatal(err)
		}
	}
	after := liveHeap()
	runtime.KeepAlive(msgs)
	t.Logf("heap-grown-bytes=%d", after-before)
}

// readDescriptorRules reads, from the descriptors, the rules of every
// field and oneof Validate visits in m (what Validate read before).
func readDescriptorRules(m protoreflect.Message) {
	md := m.Descriptor()
	if strings.HasPrefix(string(md.ParentFile().Package()), "google.") {
		return
	}
	for i := range md.Oneofs().Len() {
		xdsproto.DescriptorRequired(md.Oneofs().Get(i))
	}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if od := fd.ContainingOneof(); od != nil && m.WhichOneof(od) != fd {
			continue
		}
		xdsproto.DescriptorRules(fd)
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				m.Get(fd).Map().Range(func(_ protoreflect.MapKey, v protoreflect.Value) bool {
					readDescriptorRules(v.Message())
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				l := m.Get(fd).List()
				for j := range l.Len() {
					readDescriptorRules(l.Get(j).Message())
				}
			}
		case fd.Message() != nil && m.Has(fd):
			readDescriptorRules(m.Get(fd).Message())
		}
	}
}

// liveHeap is the heap's live bytes after a full collection.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}
