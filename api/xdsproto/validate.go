package xdsproto

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
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
// violation, naming the field by its path. The rules come from
// fieldRuleTable, generated from the descriptors with the types; a rule
// kind it does not implement is never skipped unnoticed: CheckRules finds
// it on the descriptors ahead (TestCheckRules), TestRulesTableCurrent keeps
// the table equal to them, and a rules type it does not handle is an error.
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
// field's full name and its PGV rules, written by the generator as Go
// composite literals (static data: no decoding, and no use of the
// validate package's reflection, which would make protobuf-go build its
// MessageInfos and validate.proto's descriptors).
type fieldRule struct {
	field string
	rules *validate.FieldRules
}

// fieldRules returns fd's PGV rules from fieldRuleTable, nil if it has
// none. Reading them from fd.Options() would make protobuf-go decode and
// keep a FieldOptions with an extension map for every field visited.
func fieldRules(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	i, ok := slices.BinarySearchFunc(fieldRuleTable[:], string(fd.FullName()), func(e fieldRule, n string) int {
		return strings.Compare(e.field, n)
	})
	if !ok {
		return nil
	}
	return fieldRuleTable[i].rules
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

// The rules below are applied with the validate types' Go fields, in
// their field-number order. Only the rules implemented() names are read:
// CheckRules (TestCheckRules) finds any other on the descriptors, and
// TestRulesTableCurrent keeps the table equal to them.

// messageRules applies the rules of a singular message field: required,
// and the type rules of durations, Anys and wrappers.
func messageRules(r *validate.FieldRules, md protoreflect.MessageDescriptor, set bool, v protoreflect.Value, c *checker) error {
	if r.GetMessage().GetRequired() && !set {
		return fmt.Errorf("%s: value is required", c.at())
	}
	switch t := r.GetType().(type) {
	case nil:
		return nil
	case *validate.FieldRules_Duration:
		return durationRules(t.Duration, set, v, c)
	case *validate.FieldRules_Any:
		if t.Any.GetRequired() && !set {
			return fmt.Errorf("%s: value is required", c.at())
		}
		return nil
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
	if r.GetRequired() && !set {
		return fmt.Errorf("%s: value is required", c.at())
	}
	if !set {
		return nil
	}
	d := &durationpb.Duration{
		Seconds: v.Message().Get(v.Message().Descriptor().Fields().ByName("seconds")).Int(),
		Nanos:   int32(v.Message().Get(v.Message().Descriptor().Fields().ByName("nanos")).Int()),
	}
	for _, b := range [...]struct {
		name  string
		bound *durationpb.Duration
	}{{"const", r.Const}, {"lt", r.Lt}, {"lte", r.Lte}, {"gt", r.Gt}, {"gte", r.Gte}} {
		if b.bound == nil {
			continue
		}
		cmp := compareDuration(d, b.bound)
		var ok bool
		switch b.name {
		case "const":
			ok = cmp == 0
		case "lt":
			ok = cmp < 0
		case "lte":
			ok = cmp <= 0
		case "gt":
			ok = cmp > 0
		case "gte":
			ok = cmp >= 0
		}
		if !ok {
			return fmt.Errorf("%s: duration %s must be %s %s", c.at(), d.AsDuration(), b.name, b.bound.AsDuration())
		}
	}
	return nil
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
	if rr.MinItems != nil && uint64(l.Len()) < *rr.MinItems {
		return fmt.Errorf("%s: want at least %d items, got %d", c.at(), *rr.MinItems, l.Len())
	}
	if rr.MaxItems != nil && uint64(l.Len()) > *rr.MaxItems {
		return fmt.Errorf("%s: want at most %d items, got %d", c.at(), *rr.MaxItems, l.Len())
	}
	if items := rr.GetItems(); items != nil {
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
	}
	return nil
}

func mapRules(r *validate.FieldRules, fd protoreflect.FieldDescriptor, mp protoreflect.Map, c *checker) error {
	if r == nil {
		return nil
	}
	mr := r.GetMap()
	if mr == nil {
		return fmt.Errorf("%s: %T rules on a map field: %w", c.at(), r.GetType(), errUnsupported)
	}
	if mr.MinPairs != nil && uint64(mp.Len()) < *mr.MinPairs {
		return fmt.Errorf("%s: want at least %d pairs, got %d", c.at(), *mr.MinPairs, mp.Len())
	}
	keys := mr.GetKeys()
	if keys == nil {
		return nil
	}
	var err error
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		n := c.key(k.String())
		err = scalarRules(keys, fd.MapKey(), k.Value(), c)
		if err == nil {
			c.leave(n)
		}
		return err == nil
	})
	return err
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
		if t.Bool.Const != nil && v.Bool() != *t.Bool.Const {
			return fmt.Errorf("%s: must be %v", c.at(), *t.Bool.Const)
		}
		return nil
	case *validate.FieldRules_Enum:
		return enumRules(t.Enum, fd, v.Enum(), c)
	case *validate.FieldRules_Uint32:
		x := t.Uint32
		return numberRules(uint32(v.Uint()), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, c)
	case *validate.FieldRules_Uint64:
		x := t.Uint64
		return numberRules(v.Uint(), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, c)
	case *validate.FieldRules_Int32:
		x := t.Int32
		return numberRules(int32(v.Int()), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, c)
	case *validate.FieldRules_Int64:
		x := t.Int64
		return numberRules(v.Int(), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, c)
	case *validate.FieldRules_Double:
		x := t.Double
		return numberRules(v.Float(), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, c)
	case *validate.FieldRules_Float:
		x := t.Float
		return numberRules(float32(v.Float()), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, c)
	}
	return fmt.Errorf("%s: %T rules: %w", c.at(), r.GetType(), errUnsupported)
}

func enumRules(r *validate.EnumRules, fd protoreflect.FieldDescriptor, n protoreflect.EnumNumber, c *checker) error {
	if r.Const != nil && int32(n) != *r.Const {
		return fmt.Errorf("%s: must be %v", c.at(), *r.Const)
	}
	if r.GetDefinedOnly() && fd.Enum().Values().ByNumber(n) == nil {
		return fmt.Errorf("%s: %d is not a defined %s", c.at(), n, EnvoyName(fd.Enum()))
	}
	if len(r.In) > 0 && !slices.Contains(r.In, int32(n)) {
		return fmt.Errorf("%s: must be one of %v", c.at(), r.In)
	}
	if slices.Contains(r.NotIn, int32(n)) {
		return fmt.Errorf("%s: must not be %d", c.at(), n)
	}
	return nil
}

// number is what a numeric PGV rules message bounds.
type number interface {
	~int32 | ~int64 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// numberRules applies const, lt, lte, gt, gte, in and not_in of a numeric
// rules message to v.
func numberRules[T number](v T, konst, lt, lte, gt, gte *T, in, notIn []T, c *checker) error {
	lo, hi := gte, lte
	if lo == nil {
		lo = gt
	}
	if hi == nil {
		hi = lt
	}
	if lo != nil && hi != nil && *hi < *lo {
		// PGV reads lt < gt as "outside the range".
		return fmt.Errorf("%s: exclusive range rule: %w", c.at(), errUnsupported)
	}
	for _, b := range [...]struct {
		name  string
		bound *T
	}{{"const", konst}, {"lt", lt}, {"lte", lte}, {"gt", gt}, {"gte", gte}} {
		if b.bound == nil {
			continue
		}
		var ok bool
		switch w := *b.bound; b.name {
		case "const":
			ok = v == w
		case "lt":
			ok = v < w
		case "lte":
			ok = v <= w
		case "gt":
			ok = v > w
		case "gte":
			ok = v >= w
		}
		if !ok {
			return fmt.Errorf("%s: %v must be %s %v", c.at(), v, b.name, *b.bound)
		}
	}
	if len(in) > 0 && !slices.Contains(in, v) {
		return fmt.Errorf("%s: %v must be in %v", c.at(), v, in)
	}
	if slices.Contains(notIn, v) {
		return fmt.Errorf("%s: %v must be not_in %v", c.at(), v, notIn)
	}
	return nil
}

func stringRules(r *validate.StringRules, s string, c *checker) error {
	fail := func(rule string, v any) error {
		return fmt.Errorf("%s: %q does not satisfy %s %v", c.at(), s, rule, v)
	}
	if r.MinLen != nil && uint64(utf8.RuneCountInString(s)) < *r.MinLen {
		return fail("min_len", *r.MinLen)
	}
	if r.MaxLen != nil && uint64(utf8.RuneCountInString(s)) > *r.MaxLen {
		return fail("max_len", *r.MaxLen)
	}
	if r.MinBytes != nil && uint64(len(s)) < *r.MinBytes {
		return fail("min_bytes", *r.MinBytes)
	}
	if r.MaxBytes != nil && uint64(len(s)) > *r.MaxBytes {
		return fail("max_bytes", *r.MaxBytes)
	}
	if r.Pattern != nil {
		re, err := regexp.Compile(*r.Pattern)
		if err != nil {
			return fmt.Errorf("%s: pattern rule %q: %w", c.at(), *r.Pattern, err)
		}
		if !re.MatchString(s) {
			return fail("pattern", *r.Pattern)
		}
	}
	if len(r.In) > 0 && !slices.Contains(r.In, s) {
		return fail("in", r.In)
	}
	if slices.Contains(r.NotIn, s) {
		return fail("not_in", r.NotIn)
	}
	if w, ok := r.GetWellKnown().(*validate.StringRules_WellKnownRegex); ok {
		strict := r.Strict == nil || r.GetStrict()
		var re *regexp.Regexp
		switch {
		case !strict:
			re = headerLoose
		case w.WellKnownRegex == validate.KnownRegex_HTTP_HEADER_NAME:
			re = headerNameStrict
		case w.WellKnownRegex == validate.KnownRegex_HTTP_HEADER_VALUE:
			re = headerValueStrict
		default:
			return fmt.Errorf("%s: well_known_regex %d: %w", c.at(), w.WellKnownRegex, errUnsupported)
		}
		if !re.MatchString(s) {
			return fail("well_known_regex", w.WellKnownRegex)
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
