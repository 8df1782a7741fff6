package xdsproto

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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
	c := &checker{path: make([]byte, 0, 128)}
	return c.message(m.ProtoReflect())
}

// checker holds the path of the field being checked: names are appended
// and cut off as the walk goes in and out, and made into a string only for
// an error (a string per field visited was most of what validating a large
// configuration allocated).
type checker struct {
	path []byte
}

// at is the path of the current field: field.sub[0].other[key].
func (c *checker) at() string { return string(c.path) }

// field enters a field; the returned length is where leave cuts back to.
func (c *checker) field(name protoreflect.Name) int {
	n := len(c.path)
	if n > 0 {
		c.path = append(c.path, '.')
	}
	c.path = append(c.path, name...)
	return n
}

// index enters a list item.
func (c *checker) index(i int) int {
	n := len(c.path)
	c.path = append(c.path, '[')
	c.path = strconv.AppendInt(c.path, int64(i), 10)
	c.path = append(c.path, ']')
	return n
}

// key enters a map value.
func (c *checker) key(k string) int {
	n := len(c.path)
	c.path = append(c.path, '[')
	c.path = append(c.path, k...)
	c.path = append(c.path, ']')
	return n
}

func (c *checker) leave(n int) { c.path = c.path[:n] }

func (c *checker) message(m protoreflect.Message) error {
	md := m.Descriptor()
	for i := range md.Oneofs().Len() {
		od := md.Oneofs().Get(i)
		if oneofRequired(od) && m.WhichOneof(od) == nil {
			c.field(od.Name())
			return fmt.Errorf("%s: a value is required (of the ones this sidecar reads)", c.at())
		}
	}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if od := fd.ContainingOneof(); od != nil && m.WhichOneof(od) != fd {
			continue
		}
		n := c.field(fd.Name())
		if err := c.validateField(m, fd); err != nil {
			return err
		}
		c.leave(n)
	}
	return nil
}

func (c *checker) validateField(m protoreflect.Message, fd protoreflect.FieldDescriptor) error {
	r := fieldRules(fd)
	switch {
	case fd.IsMap():
		if r == nil && !m.Has(fd) {
			return nil // empty, nothing to check
		}
		mp := m.Get(fd).Map()
		if err := mapRules(r, fd, mp, c); err != nil {
			return err
		}
		if fd.MapValue().Message() == nil || r.GetMap().GetValues().GetMessage().GetSkip() {
			return nil
		}
		var err error
		mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			n := c.key(k.String())
			err = c.nested(fd.MapValue().Message(), v.Message())
			if err == nil {
				c.leave(n)
			}
			return err == nil
		})
		return err
	case fd.IsList():
		if r == nil && !m.Has(fd) {
			return nil // empty, nothing to check
		}
		l := m.Get(fd).List()
		if err := listRules(r, fd, l, c); err != nil {
			return err
		}
		if fd.Message() == nil || r.GetRepeated().GetItems().GetMessage().GetSkip() {
			return nil
		}
		for i := range l.Len() {
			n := c.index(i)
			if err := c.nested(fd.Message(), l.Get(i).Message()); err != nil {
				return err
			}
			c.leave(n)
		}
		return nil
	case fd.Message() != nil:
		set := m.Has(fd)
		if r != nil {
			if err := messageRules(r, fd.Message(), set, m.Get(fd), c); err != nil {
				return err
			}
		}
		if !set || r.GetMessage().GetSkip() {
			return nil
		}
		return c.nested(fd.Message(), m.Get(fd).Message())
	default:
		if r == nil {
			return nil
		}
		return scalarRules(r, fd, m.Get(fd), c)
	}
}

// nested recurses into a set message unless it is a google.protobuf or
// google.rpc one (PGV generates no rules for those).
func (c *checker) nested(md protoreflect.MessageDescriptor, m protoreflect.Message) error {
	if external(md) {
		return nil
	}
	return c.message(m)
}

func external(md protoreflect.MessageDescriptor) bool {
	pkg := string(md.ParentFile().Package())
	return len(pkg) >= 7 && (pkg[:7] == "google.")
}

// fieldRule is an entry of fieldRuleTable (zz_generated.rules.go): a
// field's full name and its serialized validate.FieldRules.
type fieldRule struct{ field, rules string }

// decodedRules holds fieldRuleTable's rules decoded, each the first time
// Validate reaches its field (the table itself is static data).
var decodedRules [len(fieldRuleTable)]atomic.Pointer[validate.FieldRules]

// fieldRules returns fd's PGV rules from fieldRuleTable, nil if it has
// none. Reading them from fd.Options() would make protobuf-go decode and
// keep a FieldOptions with an extension map for every field visited.
func fieldRules(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	name := string(fd.FullName())
	i, ok := slices.BinarySearchFunc(fieldRuleTable[:], name, func(e fieldRule, n string) int {
		return strings.Compare(e.field, n)
	})
	if !ok {
		return nil
	}
	if r := decodedRules[i].Load(); r != nil {
		return r
	}
	r := new(validate.FieldRules)
	if err := proto.Unmarshal([]byte(fieldRuleTable[i].rules), r); err != nil {
		panic(fmt.Sprintf("xdsproto: generated rules of %s: %v", name, err))
	}
	if !decodedRules[i].CompareAndSwap(nil, r) {
		return decodedRules[i].Load()
	}
	return r
}

// oneofRequired reports whether od has (validate.required), from
// requiredOneofs.
func oneofRequired(od protoreflect.OneofDescriptor) bool {
	_, ok := slices.BinarySearch(requiredOneofs[:], string(od.FullName()))
	return ok
}

// descriptorRules reads fd's PGV rules from its options (what the
// generator wrote fieldRuleTable from; CheckRules and the tests use it).
func descriptorRules(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	o := fd.Options()
	if o == nil || !proto.HasExtension(o, validate.E_Rules) {
		return nil
	}
	return proto.GetExtension(o, validate.E_Rules).(*validate.FieldRules)
}

// descriptorRequired reads a oneof's (validate.required) from its options.
func descriptorRequired(od protoreflect.OneofDescriptor) bool {
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
func messageRules(r *validate.FieldRules, md protoreflect.MessageDescriptor, set bool, v protoreflect.Value, c *checker) error {
	if err := eachRule(r.GetMessage(), c, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		switch rule.Name() {
		case "required":
			if rv.Bool() && !set {
				return fmt.Errorf("%s: value is required", c.at())
			}
		case "skip":
		default:
			return unsupported(c.at(), rule)
		}
		return nil
	}); err != nil {
		return err
	}
	switch t := r.GetType().(type) {
	case nil:
		return nil
	case *validate.FieldRules_Duration:
		return durationRules(t.Duration, set, v, c)
	case *validate.FieldRules_Any:
		return eachRule(t.Any, c, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
			switch rule.Name() {
			case "required":
				if rv.Bool() && !set {
					return fmt.Errorf("%s: value is required", c.at())
				}
				return nil
			}
			return unsupported(c.at(), rule)
		})
	default:
		// A wrapper (google.protobuf.UInt32Value, ...): its value, when set.
		if md.Fields().Len() != 1 || md.Fields().Get(0).Name() != "value" || !external(md) {
			return fmt.Errorf("%s: %T rules on a %s field: %w", c.at(), t, md.FullName(), errUnsupported)
		}
		if !set {
			return nil
		}
		return scalarRules(r, md.Fields().Get(0), v.Message().Get(md.Fields().Get(0)), c)
	}
}

func durationRules(r *validate.DurationRules, set bool, v protoreflect.Value, c *checker) error {
	var d *durationpb.Duration
	if set {
		d = &durationpb.Duration{
			Seconds: v.Message().Get(v.Message().Descriptor().Fields().ByName("seconds")).Int(),
			Nanos:   int32(v.Message().Get(v.Message().Descriptor().Fields().ByName("nanos")).Int()),
		}
	}
	return eachRule(r, c, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		if rule.Name() == "required" {
			if rv.Bool() && !set {
				return fmt.Errorf("%s: value is required", c.at())
			}
			return nil
		}
		if !set {
			return nil
		}
		bound := rv.Message().Interface().(*durationpb.Duration)
		cmp := compareDuration(d, bound)
		var ok bool
		switch rule.Name() {
		case "lt":
			ok = cmp < 0
		case "lte":
			ok = cmp <= 0
		case "gt":
			ok = cmp > 0
		case "gte":
			ok = cmp >= 0
		case "const":
			ok = cmp == 0
		default:
			return unsupported(c.at(), rule)
		}
		if !ok {
			return fmt.Errorf("%s: duration %s must be %s %s", c.at(), d.AsDuration(), rule.Name(), bound.AsDuration())
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

func listRules(r *validate.FieldRules, fd protoreflect.FieldDescriptor, l protoreflect.List, c *checker) error {
	if r == nil {
		return nil
	}
	rr := r.GetRepeated()
	if rr == nil {
		return fmt.Errorf("%s: %T rules on a repeated field: %w", c.at(), r.GetType(), errUnsupported)
	}
	return eachRule(rr, c, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		switch rule.Name() {
		case "min_items":
			if uint64(l.Len()) < rv.Uint() {
				return fmt.Errorf("%s: want at least %d items, got %d", c.at(), rv.Uint(), l.Len())
			}
		case "max_items":
			if uint64(l.Len()) > rv.Uint() {
				return fmt.Errorf("%s: want at most %d items, got %d", c.at(), rv.Uint(), l.Len())
			}
		case "items":
			items := rr.GetItems()
			for i := range l.Len() {
				n := c.index(i)
				var err error
				if fd.Message() != nil {
					err = messageRules(items, fd.Message(), true, l.Get(i), c)
				} else {
					err = scalarRules(items, fd, l.Get(i), c)
				}
				if err != nil {
					return err
				}
				c.leave(n)
			}
		default:
			return unsupported(c.at(), rule)
		}
		return nil
	})
}

func mapRules(r *validate.FieldRules, fd protoreflect.FieldDescriptor, mp protoreflect.Map, c *checker) error {
	if r == nil {
		return nil
	}
	mr := r.GetMap()
	if mr == nil {
		return fmt.Errorf("%s: %T rules on a map field: %w", c.at(), r.GetType(), errUnsupported)
	}
	return eachRule(mr, c, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		switch rule.Name() {
		case "keys":
			var err error
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				n := c.key(k.String())
				err = scalarRules(mr.GetKeys(), fd.MapKey(), k.Value(), c)
				if err == nil {
					c.leave(n)
				}
				return err == nil
			})
			return err
		case "min_pairs":
			if uint64(mp.Len()) < rv.Uint() {
				return fmt.Errorf("%s: want at least %d pairs, got %d", c.at(), rv.Uint(), mp.Len())
			}
			return nil
		}
		return unsupported(c.at(), rule)
	})
}

// HTTP header patterns of PGV's well_known_regex (strict and not).
var (
	headerNameStrict  = regexp.MustCompile("^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$")
	headerValueStrict = regexp.MustCompile("^[^\u0000-\u0008\u000A-\u001F\u007F]*$")
	headerLoose       = regexp.MustCompile("^[^\u0000\u000A\u000D]*$")
)

func scalarRules(r *validate.FieldRules, fd protoreflect.FieldDescriptor, v protoreflect.Value, c *checker) error {
	switch t := r.GetType().(type) {
	case nil:
		return nil
	case *validate.FieldRules_String_:
		return stringRules(t.String_, v.String(), c)
	case *validate.FieldRules_Bool:
		return eachRule(t.Bool, c, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
			if rule.Name() != "const" {
				return unsupported(c.at(), rule)
			}
			if v.Bool() != rv.Bool() {
				return fmt.Errorf("%s: must be %v", c.at(), rv.Bool())
			}
			return nil
		})
	case *validate.FieldRules_Enum:
		return eachRule(t.Enum, c, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
			n := v.Enum()
			switch rule.Name() {
			case "defined_only":
				if rv.Bool() && fd.Enum().Values().ByNumber(n) == nil {
					return fmt.Errorf("%s: %d is not a defined %s", c.at(), n, EnvoyName(fd.Enum()))
				}
			case "not_in":
				if slices.Contains(t.Enum.GetNotIn(), int32(n)) {
					return fmt.Errorf("%s: must not be %d", c.at(), n)
				}
			case "in":
				if !slices.Contains(t.Enum.GetIn(), int32(n)) {
					return fmt.Errorf("%s: must be one of %v", c.at(), t.Enum.GetIn())
				}
			case "const":
				if int64(n) != rv.Int() {
					return fmt.Errorf("%s: must be %v", c.at(), rv)
				}
			default:
				return unsupported(c.at(), rule)
			}
			return nil
		})
	case *validate.FieldRules_Uint32:
		return numberRules(t.Uint32, v, c)
	case *validate.FieldRules_Uint64:
		return numberRules(t.Uint64, v, c)
	case *validate.FieldRules_Int32:
		return numberRules(t.Int32, v, c)
	case *validate.FieldRules_Int64:
		return numberRules(t.Int64, v, c)
	case *validate.FieldRules_Double:
		return numberRules(t.Double, v, c)
	case *validate.FieldRules_Float:
		return numberRules(t.Float, v, c)
	}
	return fmt.Errorf("%s: %T rules: %w", c.at(), r.GetType(), errUnsupported)
}

// numberRules applies lt, lte, gt, gte, const, in and not_in of a numeric
// rules message to v (the rule values have v's kind).
func numberRules(rules proto.Message, v protoreflect.Value, c *checker) error {
	rm := rules.ProtoReflect()
	var lo, hi protoreflect.FieldDescriptor
	fields := rm.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if !rm.Has(f) {
			continue
		}
		switch f.Name() {
		case "gt", "gte":
			lo = f
		case "lt", "lte":
			hi = f
		}
	}
	if lo != nil && hi != nil && compare(rm.Get(hi), rm.Get(lo), hi.Kind()) < 0 {
		// PGV reads lt < gt as "outside the range".
		return fmt.Errorf("%s: exclusive range rule: %w", c.at(), errUnsupported)
	}
	return eachRule(rules, c, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
		var ok bool
		switch rule.Name() {
		case "lt":
			ok = compare(v, rv, rule.Kind()) < 0
		case "lte":
			ok = compare(v, rv, rule.Kind()) <= 0
		case "gt":
			ok = compare(v, rv, rule.Kind()) > 0
		case "gte":
			ok = compare(v, rv, rule.Kind()) >= 0
		case "const":
			ok = compare(v, rv, rule.Kind()) == 0
		case "in", "not_in":
			found := false
			l := rv.List()
			for i := range l.Len() {
				found = found || compare(v, l.Get(i), rule.Kind()) == 0
			}
			ok = found == (rule.Name() == "in")
		default:
			return unsupported(c.at(), rule)
		}
		if !ok {
			return fmt.Errorf("%s: %v must be %s %v", c.at(), v, rule.Name(), rv)
		}
		return nil
	})
}

// compare orders two numeric values of kind k (a rule field's kind: the
// rule values have the checked value's kind). It does not box them.
func compare(a, b protoreflect.Value, k protoreflect.Kind) int {
	switch k {
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		au, bu := a.Uint(), b.Uint()
		return cmp3(au < bu, au > bu)
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		ai, bi := a.Int(), b.Int()
		return cmp3(ai < bi, ai > bi)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		af, bf := a.Float(), b.Float()
		return cmp3(af < bf, af > bf)
	default:
		panic(fmt.Sprintf("xdsproto: compare %s", k))
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

func stringRules(r *validate.StringRules, s string, c *checker) error {
	return eachRule(r, c, func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) error {
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
				return fmt.Errorf("%s: pattern rule %q: %w", c.at(), rv.String(), err)
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
				return unsupported(c.at(), rule)
			}
			ok = re.MatchString(s)
		default:
			return unsupported(c.at(), rule)
		}
		if !ok {
			return fmt.Errorf("%s: %q does not satisfy %s %v", c.at(), s, rule.Name(), rv)
		}
		return nil
	})
}

// eachRule calls f for each rule set in rules (a PGV rules message), in
// field order. It walks the descriptor rather than Range so that f (and
// what its closure holds) stays on the caller's stack.
func eachRule(rules proto.Message, c *checker, f func(rule protoreflect.FieldDescriptor, v protoreflect.Value) error) error {
	if rules == nil {
		return nil
	}
	rm := rules.ProtoReflect()
	if !rm.IsValid() {
		return nil
	}
	fields := rm.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !rm.Has(fd) {
			continue
		}
		if !implemented(fd.FullName()) {
			return unsupported(c.at(), fd)
		}
		if err := f(fd, rm.Get(fd)); err != nil {
			return err
		}
	}
	return nil
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
			if r := descriptorRules(f); r != nil {
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
