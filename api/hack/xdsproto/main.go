package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	// The Envoy packages whose descriptors keep() draws from: linked for
	// their registration in protoregistry.GlobalFiles.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

const (
	// module is the Go module the output belongs to; -out is its root.
	module = "github.com/weftmesh/weft/api"
	// goRoot is the import path the trimmed packages live under.
	goRoot = module + "/xdsproto"
	// pkgPrefix is prepended to every trimmed proto package.
	pkgPrefix = "weft.xds."
)

// external reports whether a proto package is used as it is (its Go types
// are linked anyway, by the protobuf runtime or grpc) rather than trimmed.
func external(pkg protoreflect.FullName) bool {
	return strings.HasPrefix(string(pkg), "google.protobuf") || strings.HasPrefix(string(pkg), "google.rpc")
}

func main() {
	out := flag.String("out", ".", "root of the "+module+" module")
	verbose := flag.Bool("v", false, "list the fields dropped because their type is not kept")
	flag.Parse()
	if err := run(*out, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "xdsproto:", err)
		os.Exit(1)
	}
}

func run(out string, verbose bool) error {
	t, err := newTrimmer(keep(), opaque())
	if err != nil {
		return err
	}
	files, err := t.files(verbose)
	if err != nil {
		return err
	}
	for _, n := range sortedKeys(t.opaque) {
		return fmt.Errorf("opaque field %s: not in a kept message, or its type is kept", n)
	}
	req := &pluginpb.CodeGeneratorRequest{Parameter: proto.String("module=" + module)}
	seen := map[string]bool{}
	var addDeps func(fd protoreflect.FileDescriptor)
	addDeps = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := range fd.Imports().Len() {
			addDeps(fd.Imports().Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(fd))
	}
	for _, f := range files {
		for _, dep := range f.GetDependency() {
			fd, err := protoregistry.GlobalFiles.FindFileByPath(dep)
			if err == nil {
				addDeps(fd)
			}
		}
	}
	// Dependencies first, as protoc orders them.
	byName := map[string]*descriptorpb.FileDescriptorProto{}
	for _, f := range files {
		byName[f.GetName()] = f
	}
	var add func(f *descriptorpb.FileDescriptorProto)
	add = func(f *descriptorpb.FileDescriptorProto) {
		if seen[f.GetName()] {
			return
		}
		seen[f.GetName()] = true
		for _, dep := range f.GetDependency() {
			if d := byName[dep]; d != nil {
				add(d)
			}
		}
		req.ProtoFile = append(req.ProtoFile, f)
		req.FileToGenerate = append(req.FileToGenerate, f.GetName())
	}
	for _, f := range files {
		add(f)
	}
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		return fmt.Errorf("protogen: %w", err)
	}
	gen.SupportedFeatures = internal_gengo.SupportedFeatures
	for _, f := range gen.Files {
		if f.Generate {
			internal_gengo.GenerateFile(gen, f)
		}
	}
	resp := gen.Response()
	if resp.Error != nil {
		return fmt.Errorf("protoc-gen-go: %s", resp.GetError())
	}
	// Replace the whole tree: a package no longer kept must go.
	root := filepath.Join(out, strings.TrimPrefix(goRoot, module+"/"))
	if err := removeGenerated(root); err != nil {
		return err
	}
	for _, f := range resp.GetFile() {
		p := filepath.Join(out, f.GetName())
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.GetContent()), 0o644); err != nil { //nolint:gosec // generated source, world-readable like the rest of the tree
			return err
		}
	}
	return writeRules(root, files)
}

// removeGenerated deletes the .pb.go files under root.
func removeGenerated(root string) error {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".pb.go") {
			return os.Remove(p) //nolint:gosec // G122: the generator's own output tree, not an untrusted path
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// trimmer holds the kept messages and the enums their kept fields use.
type trimmer struct {
	msgs   map[protoreflect.FullName]protoreflect.MessageDescriptor
	enums  map[protoreflect.FullName]protoreflect.EnumDescriptor
	opaque map[protoreflect.FullName]bool
}

func newTrimmer(names, opaque []string) (*trimmer, error) {
	t := &trimmer{
		msgs:   map[protoreflect.FullName]protoreflect.MessageDescriptor{},
		enums:  map[protoreflect.FullName]protoreflect.EnumDescriptor{},
		opaque: map[protoreflect.FullName]bool{},
	}
	for _, n := range opaque {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(n))
		if err != nil {
			return nil, fmt.Errorf("opaque field %s: %w", n, err)
		}
		fd, ok := d.(protoreflect.FieldDescriptor)
		if !ok || fd.Message() == nil || fd.IsMap() {
			return nil, fmt.Errorf("opaque field %s: not a message field (nor a map)", n)
		}
		t.opaque[fd.FullName()] = true
	}
	for _, n := range names {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(n))
		if err != nil {
			return nil, fmt.Errorf("kept message %s: %w", n, err)
		}
		md, ok := d.(protoreflect.MessageDescriptor)
		if !ok {
			return nil, fmt.Errorf("kept name %s is not a message", n)
		}
		if t.msgs[md.FullName()] != nil {
			return nil, fmt.Errorf("kept message %s is listed twice", n)
		}
		t.msgs[md.FullName()] = md
	}
	for _, md := range t.msgs {
		if p, ok := md.Parent().(protoreflect.MessageDescriptor); ok && t.msgs[p.FullName()] == nil {
			return nil, fmt.Errorf("kept message %s: its parent %s must be kept too", md.FullName(), p.FullName())
		}
	}
	// Enums used by kept fields (and map entries' values).
	for _, md := range t.msgs {
		t.collectEnums(md)
	}
	return t, nil
}

func (t *trimmer) collectEnums(md protoreflect.MessageDescriptor) {
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if !t.keepField(fd) {
			continue
		}
		if fd.IsMap() {
			t.collectEnums(fd.Message())
			continue
		}
		if ed := fd.Enum(); ed != nil && !external(ed.ParentFile().Package()) {
			t.enums[ed.FullName()] = ed
		}
	}
}

// keepField reports whether a field of a kept message stays: its type is
// a scalar, an enum, a kept message, an external message or a map whose
// value is one of those.
func (t *trimmer) keepField(fd protoreflect.FieldDescriptor) bool {
	if fd.IsMap() {
		return t.keepField(fd.MapValue())
	}
	md := fd.Message()
	if md == nil {
		return true
	}
	return t.msgs[md.FullName()] != nil || external(md.ParentFile().Package())
}

// files returns one FileDescriptorProto per trimmed proto package.
func (t *trimmer) files(verbose bool) ([]*descriptorpb.FileDescriptorProto, error) {
	byPkg := map[protoreflect.FullName]*descriptorpb.FileDescriptorProto{}
	deps := map[protoreflect.FullName]map[string]bool{}
	file := func(pkg protoreflect.FullName, goPkg string) *descriptorpb.FileDescriptorProto {
		f := byPkg[pkg]
		if f == nil {
			f = &descriptorpb.FileDescriptorProto{
				Name:    proto.String(fileName(pkg)),
				Package: proto.String(pkgPrefix + string(pkg)),
				Syntax:  proto.String("proto3"),
				Options: &descriptorpb.FileOptions{GoPackage: proto.String(goPkg)},
			}
			byPkg[pkg] = f
			deps[pkg] = map[string]bool{}
		}
		return f
	}
	for _, name := range sortedKeys(t.msgs) {
		md := t.msgs[name]
		if _, nested := md.Parent().(protoreflect.MessageDescriptor); nested {
			continue
		}
		pkg := md.ParentFile().Package()
		goPkg, err := goPackage(md.ParentFile())
		if err != nil {
			return nil, err
		}
		f := file(pkg, goPkg)
		dp, err := t.message(md, deps[pkg], verbose)
		if err != nil {
			return nil, err
		}
		f.MessageType = append(f.MessageType, dp)
	}
	for _, name := range sortedKeys(t.enums) {
		ed := t.enums[name]
		if _, nested := ed.Parent().(protoreflect.MessageDescriptor); nested {
			continue // emitted with its message
		}
		pkg := ed.ParentFile().Package()
		goPkg, err := goPackage(ed.ParentFile())
		if err != nil {
			return nil, err
		}
		f := file(pkg, goPkg)
		f.EnumType = append(f.EnumType, enum(ed))
	}
	var out []*descriptorpb.FileDescriptorProto
	for _, pkg := range sortedKeys(byPkg) {
		f := byPkg[pkg]
		delete(deps[pkg], f.GetName())
		f.Dependency = slices.Sorted(maps.Keys(deps[pkg]))
		out = append(out, f)
	}
	return out, nil
}

// message trims one kept message (and its kept nested messages and used
// nested enums), recording the files its fields' types come from in deps.
func (t *trimmer) message(md protoreflect.MessageDescriptor, deps map[string]bool, verbose bool) (*descriptorpb.DescriptorProto, error) {
	dp := &descriptorpb.DescriptorProto{Name: proto.String(string(md.Name()))}
	if md.IsMapEntry() {
		dp.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
	}
	oneofIndex := map[int]int32{} // original index -> new index
	full := protodesc.ToDescriptorProto(md)
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if !t.keepField(fd) {
			// A oneof keeps every member, so that the oneof reads as set
			// whichever member the sender chose.
			if od := fd.ContainingOneof(); t.opaque[fd.FullName()] || (od != nil && !od.IsSynthetic()) {
				if t.msgs[md.FullName()] == nil {
					return nil, fmt.Errorf("opaque field %s: its message is not kept", fd.FullName())
				}
				dp.Field = append(dp.Field, opaqueField(full.GetField()[i], fd, dp, oneofIndex, deps))
				delete(t.opaque, fd.FullName())
			} else if verbose {
				fmt.Fprintf(os.Stderr, "dropped %s (%s)\n", fd.FullName(), fd.Message().FullName())
			}
			continue
		}
		if t.opaque[fd.FullName()] {
			return nil, fmt.Errorf("opaque field %s: its type is kept, so the field is too", fd.FullName())
		}
		fp := proto.Clone(full.GetField()[i]).(*descriptorpb.FieldDescriptorProto)
		fp.Options = fieldOptions(fd, deps)
		if od := fd.ContainingOneof(); od != nil {
			idx, ok := oneofIndex[od.Index()]
			if !ok {
				idx = int32(len(dp.OneofDecl))
				oneofIndex[od.Index()] = idx
				dp.OneofDecl = append(dp.OneofDecl, oneof(od, deps))
			}
			fp.OneofIndex = proto.Int32(idx)
		}
		var ref protoreflect.Descriptor
		switch {
		case fd.Message() != nil:
			ref = fd.Message()
		case fd.Enum() != nil:
			ref = fd.Enum()
		}
		if ref != nil {
			if fd.IsMap() {
				// The entry is nested here; its value's file is a dependency.
				if v := fd.MapValue(); v.Message() != nil {
					deps[depFile(v.Message())] = true
				} else if v.Enum() != nil {
					deps[depFile(v.Enum())] = true
				}
			} else {
				deps[depFile(ref)] = true
				fp.TypeName = proto.String("." + typeName(ref))
			}
			if fd.IsMap() {
				fp.TypeName = proto.String("." + pkgPrefix + string(fd.Message().FullName()))
			}
		}
		dp.Field = append(dp.Field, fp)
	}
	// Synthetic oneofs (proto3 optional) must follow the real ones.
	sortOneofs(dp)
	for i := range md.Messages().Len() {
		nm := md.Messages().Get(i)
		keepIt := t.msgs[nm.FullName()] != nil
		if nm.IsMapEntry() {
			keepIt = false
			for j := range md.Fields().Len() {
				fd := md.Fields().Get(j)
				if fd.IsMap() && fd.Message() == nm && t.keepField(fd) {
					keepIt = true
				}
			}
		}
		if !keepIt {
			continue
		}
		n, err := t.message(nm, deps, verbose)
		if err != nil {
			return nil, err
		}
		dp.NestedType = append(dp.NestedType, n)
	}
	for i := range md.Enums().Len() {
		ed := md.Enums().Get(i)
		if t.enums[ed.FullName()] != nil {
			dp.EnumType = append(dp.EnumType, enum(ed))
		}
	}
	return dp, nil
}

// validateProto is the file of the PGV rules kept on fields and oneofs.
const validateProto = "validate/validate.proto"

// fieldOptions keeps, of a field's options, packed and the PGV rules
// (xdsproto.Validate enforces them), recording validate.proto in deps.
func fieldOptions(fd protoreflect.FieldDescriptor, deps map[string]bool) *descriptorpb.FieldOptions {
	orig, _ := fd.Options().(*descriptorpb.FieldOptions)
	if orig == nil {
		return nil
	}
	var o *descriptorpb.FieldOptions
	if orig.Packed != nil {
		o = &descriptorpb.FieldOptions{Packed: orig.Packed}
	}
	if proto.HasExtension(orig, validate.E_Rules) {
		if o == nil {
			o = &descriptorpb.FieldOptions{}
		}
		proto.SetExtension(o, validate.E_Rules, proto.GetExtension(orig, validate.E_Rules))
		deps[validateProto] = true
	}
	return o
}

// oneof declares a kept oneof, with its PGV required rule.
func oneof(od protoreflect.OneofDescriptor, deps map[string]bool) *descriptorpb.OneofDescriptorProto {
	op := &descriptorpb.OneofDescriptorProto{Name: proto.String(string(od.Name()))}
	if proto.GetExtension(od.Options(), validate.E_Required).(bool) {
		op.Options = &descriptorpb.OneofOptions{}
		proto.SetExtension(op.Options, validate.E_Required, true)
		deps[validateProto] = true
	}
	return op
}

// opaqueField keeps a message field whose type is not kept as bytes (the
// same wire form): its presence can be checked, its content is not read.
// A singular field outside a oneof becomes proto3 optional, so that an
// empty message present on the wire still reads as present.
func opaqueField(orig *descriptorpb.FieldDescriptorProto, fd protoreflect.FieldDescriptor, dp *descriptorpb.DescriptorProto, oneofIndex map[int]int32, deps map[string]bool) *descriptorpb.FieldDescriptorProto {
	fp := &descriptorpb.FieldDescriptorProto{
		Name:     orig.Name,
		Number:   orig.Number,
		Label:    orig.Label,
		Type:     descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum(),
		JsonName: orig.JsonName,
	}
	switch od := fd.ContainingOneof(); {
	case od != nil:
		idx, ok := oneofIndex[od.Index()]
		if !ok {
			idx = int32(len(dp.OneofDecl))
			oneofIndex[od.Index()] = idx
			dp.OneofDecl = append(dp.OneofDecl, oneof(od, deps))
		}
		fp.OneofIndex = proto.Int32(idx)
	case fd.Cardinality() != protoreflect.Repeated:
		fp.Proto3Optional = proto.Bool(true)
		fp.OneofIndex = proto.Int32(int32(len(dp.OneofDecl)))
		dp.OneofDecl = append(dp.OneofDecl, &descriptorpb.OneofDescriptorProto{Name: proto.String("_" + string(fd.Name()))})
	}
	return fp
}

// sortOneofs moves synthetic oneofs (of proto3 optional fields) after the
// real ones, as protoc lays them out, renumbering the fields' indexes.
func sortOneofs(dp *descriptorpb.DescriptorProto) {
	synthetic := map[int32]bool{}
	for _, f := range dp.Field {
		if f.GetProto3Optional() {
			synthetic[f.GetOneofIndex()] = true
		}
	}
	var order []int32
	for i := range dp.OneofDecl {
		if !synthetic[int32(i)] {
			order = append(order, int32(i))
		}
	}
	for i := range dp.OneofDecl {
		if synthetic[int32(i)] {
			order = append(order, int32(i))
		}
	}
	renum := map[int32]int32{}
	decls := make([]*descriptorpb.OneofDescriptorProto, len(order))
	for newIdx, old := range order {
		renum[old] = int32(newIdx)
		decls[newIdx] = dp.OneofDecl[old]
	}
	dp.OneofDecl = decls
	for _, f := range dp.Field {
		if f.OneofIndex != nil {
			f.OneofIndex = proto.Int32(renum[f.GetOneofIndex()])
		}
	}
}

func enum(ed protoreflect.EnumDescriptor) *descriptorpb.EnumDescriptorProto {
	ep := protodesc.ToEnumDescriptorProto(ed)
	allowAlias := ep.GetOptions().GetAllowAlias()
	ep.Options = nil
	if allowAlias {
		ep.Options = &descriptorpb.EnumOptions{AllowAlias: proto.Bool(true)}
	}
	for _, v := range ep.Value {
		v.Options = nil
	}
	ep.ReservedRange, ep.ReservedName = nil, nil
	return ep
}

// typeName is the name a field refers to a type by: renamed unless external.
func typeName(d protoreflect.Descriptor) string {
	if external(d.ParentFile().Package()) {
		return string(d.FullName())
	}
	return pkgPrefix + string(d.FullName())
}

// depFile is the file a field's type is defined in, as the output names it.
func depFile(d protoreflect.Descriptor) string {
	if external(d.ParentFile().Package()) {
		return d.ParentFile().Path()
	}
	return fileName(d.ParentFile().Package())
}

// fileName names the one output file of a trimmed package:
// envoy.config.cluster.v3 -> weft/xds/envoy/config/cluster/v3/cluster.proto.
func fileName(pkg protoreflect.FullName) string {
	parts := strings.Split(string(pkg), ".")
	base := parts[len(parts)-1]
	if len(parts) > 1 && strings.HasPrefix(base, "v") {
		base = parts[len(parts)-2]
	}
	return strings.ReplaceAll(pkgPrefix, ".", "/") + strings.Join(parts, "/") + "/" + base + ".proto"
}

// goPackage maps a go-control-plane (or cncf/xds) go_package to its
// trimmed copy under goRoot, keeping the Go package name.
func goPackage(fd protoreflect.FileDescriptor) (string, error) {
	gp := fd.Options().(*descriptorpb.FileOptions).GetGoPackage()
	path, name, _ := strings.Cut(gp, ";")
	for _, prefix := range []string{"github.com/envoyproxy/go-control-plane/", "github.com/cncf/xds/go/"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			if name == "" {
				name = filepath.Base(rest)
			}
			return goRoot + "/" + rest + ";" + name, nil
		}
	}
	return "", fmt.Errorf("%s: go_package %q is not go-control-plane's or cncf/xds's", fd.Path(), gp)
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
