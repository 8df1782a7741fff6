package xdsproto

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// Prefix is prepended to an Envoy proto package to name its trimmed copy.
const Prefix = "weft.xds."

const urlPrefix = "type.googleapis.com/"

// EnvoyName is the Envoy name of a trimmed message or enum (the name
// itself for any other descriptor).
func EnvoyName(d protoreflect.Descriptor) protoreflect.FullName {
	return protoreflect.FullName(strings.TrimPrefix(string(d.FullName()), Prefix))
}

// TypeURL is the type URL Envoy's resources and typed configs of m's type
// travel under.
func TypeURL(m proto.Message) string {
	return urlPrefix + string(EnvoyName(m.ProtoReflect().Descriptor()))
}

// NewAny packs m (a trimmed message, or any other) into an Any under its
// Envoy type URL.
func NewAny(m proto.Message) (*anypb.Any, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("xdsproto: %w", err)
	}
	return &anypb.Any{TypeUrl: TypeURL(m), Value: b}, nil
}

// Unpack decodes a into m, a trimmed message whose Envoy type a must hold,
// and validates it (Validate).
func Unpack(a *anypb.Any, m proto.Message) error {
	if err := UnmarshalAny(a, m); err != nil {
		return err
	}
	if err := Validate(m); err != nil {
		return fmt.Errorf("invalid: %w", err)
	}
	return nil
}

// UnmarshalAny decodes a into m, a trimmed message whose Envoy type a
// must hold, without validating it (anypb.UnmarshalTo for trimmed types).
func UnmarshalAny(a *anypb.Any, m proto.Message) error {
	if want := TypeURL(m); a.GetTypeUrl() != want {
		return fmt.Errorf("cannot unmarshal %s: want %s", a.GetTypeUrl(), want)
	}
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return fmt.Errorf("cannot unmarshal %s: %w", a.GetTypeUrl(), err)
	}
	return nil
}

// Types resolves Envoy type names and URLs to the trimmed types linked in
// the binary (and any other name to the global registry), for protojson's
// Resolver options.
type Types struct{}

var _ interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
} = Types{}

// FindMessageByName implements protoregistry.MessageTypeResolver.
func (Types) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if strings.HasPrefix(string(name), "envoy.") {
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(Prefix + name); err == nil {
			return mt, nil
		}
	}
	return protoregistry.GlobalTypes.FindMessageByName(name)
}

// FindMessageByURL implements protoregistry.MessageTypeResolver.
func (t Types) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	name := url
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		name = url[i+1:]
	}
	return t.FindMessageByName(protoreflect.FullName(name))
}

// FindExtensionByName implements protoregistry.ExtensionTypeResolver.
func (Types) FindExtensionByName(field protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(field)
}

// FindExtensionByNumber implements protoregistry.ExtensionTypeResolver.
func (Types) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(message, field)
}
