package file

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/control-plane/model"
)

// Parse decodes and validates one mesh file and returns the state it
// describes. name is used in error messages only (give the path as the user
// typed it). Parse is pure: it reads nothing but data.
//
// The file is a stream of YAML documents separated by "---" lines, each one
// Kubernetes-shaped object of a known kind (see the package doc). When
// anything is wrong Parse returns a nil-free Errors listing every problem it
// found, each with line, object and field.
//
// weftctl and the local launcher use Parse to learn the WorkloadEntries:
// State.Workloads holds, for each, Name, Namespace, ServiceAccount
// ("default" when unset), Address, Labels, Annotations and Ports.
func Parse(name string, data []byte) (model.State, error) {
	return parse(name, data, nil)
}

// parse is Parse, reusing the objects of documents memo has seen decode
// cleanly (nil: none).
func parse(name string, data []byte, memo *docMemo) (model.State, error) {
	p := &parser{file: name, seen: map[string]*document{}, memo: memo, kinds: knownKinds()}
	for _, raw := range splitDocuments(data) {
		p.document(raw)
	}
	if len(p.errs) > 0 {
		return model.State{}, p.errs.sorted()
	}
	st := p.build()
	if len(p.errs) > 0 {
		return model.State{}, p.errs.sorted()
	}
	return st, nil
}

// parser collects the objects of one file and every error found in it.
type parser struct {
	file string
	errs Errors
	objs objects
	// seen maps "<Kind> <ns>/<name>" to the document that first declared it.
	seen map[string]*document
	// memo, when set, holds the objects of documents decoded before.
	memo *docMemo
	// kube is set when the objects come from Kubernetes (Build), nil for a file.
	kube *kubeMode
	// egressPolicies are the TrafficPolicies of external destinations, by
	// "ExternalService <ns>/<name>" or "Service <ns>/<name>" (type
	// ExternalName); set by buildTraffic, read by buildEgress.
	egressPolicies map[string]model.TrafficPolicy
	// kinds is knownKinds(), made once per parse (not once per document:
	// the table's closures were 6 MB of garbage per parse of a file of
	// 10,000 WorkloadEntries).
	kinds []kind
}

// document is one YAML document of the file.
type document struct {
	// start is the line of the file that is line 1 of the document.
	start int
	// node is the document's YAML tree, parsed from raw when first needed
	// (a document taken from the memo is not parsed unless an error needs
	// a line).
	node *yaml.Node
	raw  []byte
	// object names the decoded object ("Service shop/payment") once known.
	object string
}

// line returns the file line of a JSON path in the document.
func (d *document) line(path string) int {
	if d.node == nil {
		if d.raw == nil {
			return d.start
		}
		d.node = &yaml.Node{}
		if yaml.Unmarshal(d.raw, d.node) != nil {
			return d.start
		}
	}
	l := lineOf(d.node, path)
	if l == 0 {
		return d.start
	}
	return d.start + l - 1
}

func (p *parser) errorf(d *document, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{
		File:   p.file,
		Line:   d.line(field),
		Object: d.object,
		Field:  field,
		Reason: fmt.Sprintf(format, args...),
	})
}

type rawDocument struct {
	start int
	data  []byte
}

// splitDocuments splits a YAML stream on "---" lines, remembering where each
// document starts, as Kubernetes' YAMLReader splits it.
func splitDocuments(data []byte) []rawDocument {
	var out []rawDocument
	start := 1
	var cur []byte
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		t := bytes.TrimRight(line, "\r\n")
		if bytes.HasPrefix(t, []byte("---")) && (len(t) == 3 || t[3] == ' ' || t[3] == '\t' || t[3] == '#') {
			out = append(out, rawDocument{start: start, data: cur})
			cur = nil
			start = i + 2
			continue
		}
		cur = append(cur, line...)
	}
	return append(out, rawDocument{start: start, data: cur})
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// yamlError turns a YAML parser error into an Error at the file line it
// names.
func (p *parser) yamlError(d *document, err error) {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = strings.TrimSpace(msg)
	line := d.start
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		n, _ := strconv.Atoi(msg[m[2]:m[3]])
		line = d.start + n - 1
		msg = msg[:m[0]] + msg[m[1]:]
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Reason: "invalid YAML: " + strings.TrimSpace(msg)})
}

func (p *parser) document(raw rawDocument) {
	if e, ok := p.memo.get(raw.data); ok {
		if e.kind < 0 {
			return // empty document
		}
		d := &document{start: raw.start, raw: raw.data, object: e.object}
		p.kinds[e.kind].add(p, d, e.obj)
		return
	}
	d := &document{start: raw.start, node: &yaml.Node{}, raw: raw.data}
	if err := yaml.Unmarshal(raw.data, d.node); err != nil {
		p.yamlError(d, err)
		return
	}
	root := d.node
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == 0 || root.Kind == yaml.DocumentNode || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		p.memo.put(raw.data, memoEntry{kind: -1})
		return // empty document: only comments or nothing
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(d, "", "document is not a mapping (a Kubernetes object)")
		return
	}
	jsonData, err := sigsyaml.YAMLToJSONStrict(raw.data)
	if err != nil {
		p.yamlError(d, err)
		return
	}
	var tm metav1.TypeMeta
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(jsonData, &tm); err != nil {
		p.errorf(d, "", "cannot read apiVersion and kind: %v", err)
		return
	}
	switch {
	case tm.APIVersion == "":
		p.errorf(d, "apiVersion", "required")
		return
	case tm.Kind == "":
		p.errorf(d, "kind", "required")
		return
	}
	for i, k := range p.kinds {
		if k.apiVersion == tm.APIVersion && k.kind == tm.Kind {
			// Name the object before strict decoding so that even its
			// decoding errors say which object they are about.
			var meta struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if sigsjson.UnmarshalCaseSensitivePreserveInts(jsonData, &meta) == nil {
				ns := meta.Metadata.Namespace
				if ns == "" {
					ns = metav1.NamespaceDefault
				}
				d.object = tm.Kind + " " + ns + "/" + meta.Metadata.Name
			}
			if obj, ok := k.decode(p, d, jsonData); ok {
				p.memo.put(raw.data, memoEntry{kind: i, obj: obj, object: d.object})
			}
			return
		}
	}
	p.errorf(d, "kind", "unknown kind %q in apiVersion %q (known: %s)", tm.Kind, tm.APIVersion, knownKindList())
}

var typeError = regexp.MustCompile(`^json: cannot unmarshal (\S+) into Go struct field [^.]*\.(\S+) of type (\S+)$`)

// decodeStrict decodes a document's JSON into obj as the API server would
// (case-sensitive, no unknown or duplicate fields) and reports every
// problem. It reports whether obj is usable.
func (p *parser) decodeStrict(d *document, data []byte, obj any) bool {
	strictErrs, err := sigsjson.UnmarshalStrict(data, obj)
	if err != nil {
		msg := err.Error()
		if m := typeError.FindStringSubmatch(msg); m != nil {
			p.errorf(d, m[2], "expected %s, got %s", m[3], m[1])
		} else {
			p.errorf(d, "", "%s", strings.TrimPrefix(msg, "json: "))
		}
		return false
	}
	for _, se := range strictErrs {
		var fe sigsjson.FieldError
		if asFieldError(se, &fe) {
			reason := strings.TrimSuffix(se.Error(), " "+strconv.Quote(fe.FieldPath()))
			p.errorf(d, fe.FieldPath(), "%s", reason)
			continue
		}
		p.errorf(d, "", "%v", se)
	}
	return len(strictErrs) == 0
}

func asFieldError(err error, out *sigsjson.FieldError) bool {
	fe, ok := err.(sigsjson.FieldError) //nolint:errorlint // strict errors are returned unwrapped
	if ok {
		*out = fe
	}
	return ok
}
