package xdsproto_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/weftmesh/weft/api/xdsproto"
	// Every trimmed package, so that the table is checked whole.
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/config/accesslog/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/config/endpoint/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/config/listener/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/config/rbac/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/config/trace/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/http/router/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/upstreams/http/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/service/discovery/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/type/matcher/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/type/v3"
)

// TestRulesTableCurrent: for every field and oneof of every trimmed
// message linked (all xdsproto registers, so all Validate can reach), the
// generated table (zz_generated.rules.go) holds exactly the PGV rules the
// descriptor carries, and no entry for anything else: a table gone stale
// against the trimmed descriptors fails here (make generate rewrites both).
func TestRulesTableCurrent(t *testing.T) {
	files, found := 0, 0
	var check func(md protoreflect.MessageDescriptor)
	check = func(md protoreflect.MessageDescriptor) {
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			table, desc := xdsproto.TableRules(fd), xdsproto.DescriptorRules(fd)
			if desc != nil {
				found++
			}
			if (table == nil) != (desc == nil) || !proto.Equal(table, desc) {
				t.Errorf("%s: table has rules %v, descriptor %v", fd.FullName(), table, desc)
			}
		}
		for i := range md.Oneofs().Len() {
			od := md.Oneofs().Get(i)
			table, desc := xdsproto.TableRequired(od), xdsproto.DescriptorRequired(od)
			if desc {
				found++
			}
			if table != desc {
				t.Errorf("%s: table has required %v, descriptor %v", od.FullName(), table, desc)
			}
		}
		for i := range md.Messages().Len() {
			check(md.Messages().Get(i))
		}
	}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), xdsproto.Prefix) {
			return true
		}
		files++
		for i := range fd.Messages().Len() {
			check(fd.Messages().Get(i))
		}
		return true
	})
	if files < 5 {
		t.Fatalf("only %d trimmed files linked", files)
	}
	if found != xdsproto.TableLen {
		t.Errorf("descriptors carry %d field rules and required oneofs, the table %d", found, xdsproto.TableLen)
	}
}
