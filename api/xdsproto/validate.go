package xdsproto

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Validate checks m, and every message set in it (not the contents of
// Anys), against the PGV rules its descriptors carry: (validate.rules) on
// fields and (validate.required) on oneofs, with PGV's semantics (scalar
// rules apply to zero values too; message rules other than required only
// to set fields; a rule on a oneof member only when it is the one set;
// wrapper types are checked by their value). It returns the first
// violation, naming the field by its path. A rule kind it does not
// implement is an error, never skipped (CheckRules finds them ahead).
func Validate(m proto.Message) error {
	return validateMessage(m.ProtoReflect(), "")
}

func validateMessage(m protoreflect.Message, path string) error {
	md := m.Descriptor()
	for i := range md.Oneofs().Len() {
		od := md.Oneofs().Get(i)
		if oneofRequired(od) && m.WhichOneof(od) == nil {
			return fmt.Errorf("%s: a value is required (of the ones this sidecar reads)", join(path, string(od.Name())))
		}
	}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if od := fd.ContainingOneof(); od != nil && m.WhichOneof(od) != fd {
			continue
		}
		if err := validateField(m, fd, join(path, string(fd.Name()))); err != nil {
			return err
		}
	}
	return nil
}

func validateField(m protoreflect.Message, fd protoreflect.FieldDescriptor, path string) error {
	r := fieldRules(fd)
	switch {
	case fd.IsMap():
		mp := m.Get(fd).Map()
		if err := mapRules(r, fd, mp, path); err != nil {
			return err
		}
		if fd.MapValue().Message() == nil || r.GetMap().GetValues().GetMessage().GetSkip() {
			return nil
		}
		var err error
		mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			err = validateNested(fd.MapValue().Message(), v.Message(), path+"["+k.String()+"]")
			return err == nil
		})
		return err
	case fd.IsList():
		l := m.Get(fd).List()
		if err := listRules(r, fd, l, path); err != nil {
			return err
		}
		if fd.Message() == nil || r.GetRepeated().GetItems().GetMessage().GetSkip() {
			return nil
		}
		for i := range l.Len() {
			if err := validateNested(fd.Message(), l.Get(i).Message(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		return nil
	case fd.Message() != nil:
		set := m.Has(fd)
		if r != nil {
			if err := messageRules(r, fd.Message(), set, m.Get(fd), path); err != nil {
				return err
			}
		}
		if !set || r.GetMessage().GetSkip() {
			return nil
		}
		return validateNested(fd.Message(), m.Get(fd).Message(), path)
	default:
		if r == nil {
			return nil
		}
		return scalarRules(r, fd, m.Get(fd), path)
	}
}

// validateNested recurses into a set message unless it is a google.protobuf
// or google.rpc one (PGV generates no rules for those).
func validateNested(md protoreflect.MessageDescriptor, m protoreflect.Message, path string) error {
	if external(md) {
		return nil
	}
	return validateMessage(m, path)
}

func external(md protoreflect.MessageDescriptor) bool {
	pkg := string(md.ParentFile().Package())
	return len(pkg) >= 7 && (pkg[:7] == "google.")
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func fieldRules(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	o := fd.Options()
	if o == nil || !proto.HasExtension(o, validate.E_Rules) {
		return nil
	}
	return proto.GetExtension(o, validate.E_Rules).(*validate.FieldRules)
}

func oneofRequired(od protoreflect.OneofDescriptor) bool {
	o := od.Options()
	return o != nil && proto.GetExtension(o, validate.E_Required).(bool)
}

// errUnsupported reports a rule Validate does not implement.
var errUnsupported = errors.New("PGV rule not implemented by xdsproto.Validate")

func unsupported(path string, rule protoreflect.FieldDescriptor) error {
	return fmt.Errorf("%s: %s: %w", path, rule.FullName(), errUnsupported)
}

// messageRules applies the rules of a singular message field: required,
// and the type rules of durations, Anys and wrappers.
func messageRules(r *validate.FieldRules, md protoreflect.MessageDescriptor, set bool, v protoreflect.Value, path string) error {
	if err := eachRule(r.GetMessage(), path, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		switch rule.Name() {
		case "required":
			if rv.Bool() && !set {
				return fmt.Errorf("%s: value is required", path)
			}
		case "skip":
		default:
			return unsupported(path, rule)
		}
		return nil
	}); err != nil {
		return err
	}
	switch t := r.GetType().(type) {
	case nil:
		return nil
	case *validate.FieldRules_Duration:
		return durationRules(t.Duration, set, v, path)
	case *validate.FieldRules_Any:
		return eachRule(t.Any, path, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
			switch rule.Name() {
			case "required":
				if rv.Bool() && !set {
					return fmt.Errorf("%s: value is required", path)
				}
				return nil
			}
			return unsupported(path, rule)
		})
	default:
		// A wrapper (google.protobuf.UInt32Value, ...): its value, when set.
		if md.Fields().Len() != 1 || md.Fields().Get(0).Name() != "value" || !external(md) {
			return fmt.Errorf("%s: %T rules on a %s field: %w", path, t, md.FullName(), errUnsupported)
		}
		if !set {
			return nil
		}
		return scalarRules(r, md.Fields().Get(0), v.Message().Get(md.Fields().Get(0)), path)
	}
}

func durationRules(r *validate.DurationRules, set bool, v protoreflect.Value, path string) error {
	var d *durationpb.Duration
	if set {
		d = &durationpb.Duration{
			Seconds: v.Message().Get(v.Message().Descriptor().Fields().ByName("seconds")).Int(),
			Nanos:   int32(v.Message().Get(v.Message().Descriptor().Fields().ByName("nanos")).Int()),
		}
	}
	return eachRule(r, path, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		if rule.Name() == "required" {
			if rv.Bool() && !set {
				return fmt.Errorf("%s: value is required", path)
			}
			return nil
		}
		if !set {
			return nil
		}
		bound := rv.Message().Interface().(*durationpb.Duration)
		c := compareDuration(d, bound)
		var ok bool
		switch rule.Name() {
		case "lt":
			ok = c < 0
		case "lte":
			ok = c <= 0
		case "gt":
			ok = c > 0
		case "gte":
			ok = c >= 0
		case "const":
			ok = c == 0
		default:
			return unsupported(path, rule)
		}
		if !ok {
			return fmt.Errorf("%s: duration %s must be %s %s", path, d.AsDuration(), rule.Name(), bound.AsDuration())
		}
		return nil
	})
}

func compareDuration(a, b *durationpb.Duration) int {
	if a.GetSeconds() != b.GetSeconds() {
		if a.GetSeconds() < b.GetSeconds() {
			return -1
		}
		return 1
	}
	switch {
	case a.GetNanos() < b.GetNanos():
		return -1
	case a.GetNanos() > b.GetNanos():
		return 1
	}
	return 0
}

func listRules(r *validate.FieldRules, fd protoreflect.FieldDescriptor, l protoreflect.List, path string) error {
	if r == nil {
		return nil
	}
	rr := r.GetRepeated()
	if rr == nil {
		return fmt.Errorf("%s: %T rules on a repeated field: %w", path, r.GetType(), errUnsupported)
	}
	return eachRule(rr, path, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		switch rule.Name() {
		case "min_items":
			if uint64(l.Len()) < rv.Uint() {
				return fmt.Errorf("%s: want at least %d items, got %d", path, rv.Uint(), l.Len())
			}
		case "max_items":
			if uint64(l.Len()) > rv.Uint() {
				return fmt.Errorf("%s: want at most %d items, got %d", path, rv.Uint(), l.Len())
			}
		case "items":
			items := rr.GetItems()
			for i := range l.Len() {
				p := path + "[" + strconv.Itoa(i) + "]"
				var err error
				if fd.Message() != nil {
					err = messageRules(items, fd.Message(), true, l.Get(i), p)
				} else {
					err = scalarRules(items, fd, l.Get(i), p)
				}
				if err != nil {
					return err
				}
			}
		default:
			return unsupported(path, rule)
		}
		return nil
	})
}

func mapRules(r *validate.FieldRules, fd protoreflect.FieldDescriptor, mp protoreflect.Map, path string) error {
	if r == nil {
		return nil
	}
	mr := r.GetMap()
	if mr == nil {
		return fmt.Errorf("%s: %T rules on a map field: %w", path, r.GetType(), errUnsupported)
	}
	return eachRule(mr, path, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		switch rule.Name() {
		case "keys":
			var err error
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				err = scalarRules(mr.GetKeys(), fd.MapKey(), k.Value(), path+"["+k.String()+"]")
				return err == nil
			})
			return err
		case "min_pairs":
			if uint64(mp.Len()) < rv.Uint() {
				return fmt.Errorf("%s: want at least %d pairs, got %d", path, rv.Uint(), mp.Len())
			}
			return nil
		}
		return unsupported(path, rule)
	})
}

// HTTP header patterns of PGV's well_known_regex (strict and not).
var (
	headerNameStrict  = regexp.MustCompile("^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$")
	headerValueStrict = regexp.MustCompile("^[^\u0000-\u0008\u000A-\u001F\u007F]*$")
	headerLoose       = regexp.MustCompile("^[^\u0000\u000A\u000D]*$")
)

func scalarRules(r *validate.FieldRules, fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) error {
	switch t := r.GetType().(type) {
	case nil:
		return nil
	case *validate.FieldRules_String_:
		return stringRules(t.String_, v.String(), path)
	case *validate.FieldRules_Bool:
		return eachRule(t.Bool, path, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
			if rule.Name() != "const" {
				return unsupported(path, rule)
			}
			if v.Bool() != rv.Bool() {
				return fmt.Errorf("%s: must be %v", path, rv.Bool())
			}
			return nil
		})
	case *validate.FieldRules_Enum:
		return eachRule(t.Enum, path, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
			n := v.Enum()
			switch rule.Name() {
			case "defined_only":
				if rv.Bool() && fd.Enum().Values().ByNumber(n) == nil {
					return fmt.Errorf("%s: %d is not a defined %s", path, n, EnvoyName(fd.Enum()))
				}
			case "not_in":
				if slices.Contains(t.Enum.GetNotIn(), int32(n)) {
					return fmt.Errorf("%s: must not be %d", path, n)
				}
			case "in":
				if !slices.Contains(t.Enum.GetIn(), int32(n)) {
					return fmt.Errorf("%s: must be one of %v", path, t.Enum.GetIn())
				}
			case "const":
				if int64(n) != rv.Int() {
					return fmt.Errorf("%s: must be %v", path, rv)
				}
			default:
				return unsupported(path, rule)
			}
			return nil
		})
	case *validate.FieldRules_Uint32:
		return numberRules(t.Uint32, v, path)
	case *validate.FieldRules_Uint64:
		return numberRules(t.Uint64, v, path)
	case *validate.FieldRules_Int32:
		return numberRules(t.Int32, v, path)
	case *validate.FieldRules_Int64:
		return numberRules(t.Int64, v, path)
	case *validate.FieldRules_Double:
		return numberRules(t.Double, v, path)
	case *validate.FieldRules_Float:
		return numberRules(t.Float, v, path)
	}
	return fmt.Errorf("%s: %T rules: %w", path, r.GetType(), errUnsupported)
}

// numberRules applies lt, lte, gt, gte, const, in and not_in of a numeric
// rules message to v (the rule values have v's kind).
func numberRules(rules proto.Message, v protoreflect.Value, path string) error {
	rm := rules.ProtoReflect()
	var lo, hi protoreflect.FieldDescriptor
	rm.Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		switch f.Name() {
		case "gt", "gte":
			lo = f
		case "lt", "lte":
			hi = f
		}
		return true
	})
	if lo != nil && hi != nil && compare(rm.Get(hi), rm.Get(lo)) < 0 {
		// PGV reads lt < gt as "outside the range".
		return fmt.Errorf("%s: exclusive range rule: %w", path, errUnsupported)
	}
	return eachRule(rules, path, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		var ok bool
		switch rule.Name() {
		case "lt":
			ok = compare(v, rv) < 0
		case "lte":
			ok = compare(v, rv) <= 0
		case "gt":
			ok = compare(v, rv) > 0
		case "gte":
			ok = compare(v, rv) >= 0
		case "const":
			ok = compare(v, rv) == 0
		case "in", "not_in":
			found := false
			l := rv.List()
			for i := range l.Len() {
				found = found || compare(v, l.Get(i)) == 0
			}
			ok = found == (rule.Name() == "in")
		default:
			return unsupported(path, rule)
		}
		if !ok {
			return fmt.Errorf("%s: %v must be %s %v", path, v, rule.Name(), rv)
		}
		return nil
	})
}

// compare orders two numeric values of one kind.
func compare(a, b protoreflect.Value) int {
	switch x := a.Interface().(type) {
	case uint32, uint64:
		au, bu := a.Uint(), b.Uint()
		return cmp3(au < bu, au > bu)
	case int32, int64:
		ai, bi := a.Int(), b.Int()
		return cmp3(ai < bi, ai > bi)
	case float32, float64:
		af, bf := a.Float(), b.Float()
		return cmp3(af < bf, af > bf)
	default:
		panic(fmt.Sprintf("xdsproto: compare %T", x))
	}
}

func cmp3(less, more bool) int {
	switch {
	case less:
		return -1
	case more:
		return 1
	}
	return 0
}

func stringRules(r *validate.StringRules, s, path string) error {
	return eachRule(r, path, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		var ok bool
		switch rule.Name() {
		case "min_len":
			ok = uint64(utf8.RuneCountInString(s)) >= rv.Uint()
		case "max_len":
			ok = uint64(utf8.RuneCountInString(s)) <= rv.Uint()
		case "min_bytes":
			ok = uint64(len(s)) >= rv.Uint()
		case "max_bytes":
			ok = uint64(len(s)) <= rv.Uint()
		case "pattern":
			re, err := regexp.Compile(rv.String())
			if err != nil {
				return fmt.Errorf("%s: pattern rule %q: %w", path, rv.String(), err)
			}
			ok = re.MatchString(s)
		case "in":
			ok = slices.Contains(r.GetIn(), s)
		case "not_in":
			ok = !slices.Contains(r.GetNotIn(), s)
		case "strict":
			return nil // read with well_known_regex
		case "well_known_regex":
			strict := r.Strict == nil || r.GetStrict()
			var re *regexp.Regexp
			switch {
			case !strict:
				re = headerLoose
			case r.GetWellKnownRegex() == validate.KnownRegex_HTTP_HEADER_NAME:
				re = headerNameStrict
			case r.GetWellKnownRegex() == validate.KnownRegex_HTTP_HEADER_VALUE:
				re = headerValueStrict
			default:
				return unsupported(path, rule)
			}
			ok = re.MatchString(s)
		default:
			return unsupported(path, rule)
		}
		if !ok {
			return fmt.Errorf("%s: %q does not satisfy %s %v", path, s, rule.Name(), rv)
		}
		return nil
	})
}

// eachRule calls f for each rule set in rules (a PGV rules message).
func eachRule(rules proto.Message, path string, f func(rule protoreflect.FieldDescriptor, v protoreflect.Value) error) error {
	if rules == nil {
		return nil
	}
	rm := rules.ProtoReflect()
	if !rm.IsValid() {
		return nil
	}
	var err error
	rm.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !implemented(fd.FullName()) {
			err = unsupported(path, fd)
			return false
		}
		err = f(fd, v)
		return err == nil
	})
	return err
}

// implemented reports whether Validate enforces a PGV rule.
func implemented(rule protoreflect.FullName) bool {
	switch rule {
	case "validate.FieldRules.message", "validate.FieldRules.string", "validate.FieldRules.bool",
		"validate.FieldRules.enum", "validate.FieldRules.uint32", "validate.FieldRules.uint64",
		"validate.FieldRules.int32", "validate.FieldRules.int64", "validate.FieldRules.double",
		"validate.FieldRules.float", "validate.FieldRules.duration", "validate.FieldRules.any",
		"validate.FieldRules.repeated", "validate.FieldRules.map",
		"validate.MessageRules.required", "validate.MessageRules.skip",
		"validate.AnyRules.required",
		"validate.DurationRules.required", "validate.DurationRules.lt", "validate.DurationRules.lte",
		"validate.DurationRules.gt", "validate.DurationRules.gte", "validate.DurationRules.const",
		"validate.RepeatedRules.min_items", "validate.RepeatedRules.max_items", "validate.RepeatedRules.items",
		"validate.MapRules.keys", "validate.MapRules.min_pairs",
		"validate.BoolRules.const",
		"validate.EnumRules.defined_only", "validate.EnumRules.in", "validate.EnumRules.not_in", "validate.EnumRules.const",
		"validate.StringRules.min_len", "validate.StringRules.max_len", "validate.StringRules.min_bytes",
		"validate.StringRules.max_bytes", "validate.StringRules.pattern", "validate.StringRules.in",
		"validate.StringRules.not_in", "validate.StringRules.strict", "validate.StringRules.well_known_regex":
		return true
	}
	for _, kind := range []string{"UInt32", "UInt64", "Int32", "Int64", "Double", "Float"} {
		for _, r := range []string{"lt", "lte", "gt", "gte", "const", "in", "not_in"} {
			if rule == protoreflect.FullName("validate."+kind+"Rules."+r) {
				return true
			}
		}
	}
	return false
}

// CheckRules reports the first PGV rule on a field of fd's messages that
// Validate does not implement (a test runs it on every trimmed file, so a
// regenerated set with a new rule kind fails there, not at run time).
func CheckRules(fd protoreflect.FileDescriptor) error {
	var check func(md protoreflect.MessageDescriptor) error
	check = func(md protoreflect.MessageDescriptor) error {
		for i := range md.Fields().Len() {
			f := md.Fields().Get(i)
			if r := fieldRules(f); r != nil {
				if err := checkRuleMessage(r.ProtoReflect(), string(f.FullName())); err != nil {
					return err
				}
			}
		}
		for i := range md.Messages().Len() {
			if err := check(md.Messages().Get(i)); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range fd.Messages().Len() {
		if err := check(fd.Messages().Get(i)); err != nil {
			return err
		}
	}
	return nil
}

func checkRuleMessage(rm protoreflect.Message, path string) error {
	var err error
	rm.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !implemented(f.FullName()) {
			err = unsupported(path, f)
			return false
		}
		if f.Message() != nil && f.Message().ParentFile().Package() == "validate" && !f.IsList() {
			err = checkRuleMessage(v.Message(), path)
		}
		return err == nil
	})
	return err
}
