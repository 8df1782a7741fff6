package file

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a mesh file, located as precisely as the parser
// can: Error() reads
//
//	mesh.yaml:23: Service shop/payment: spec.ports[1].port: duplicate port 8080
//
// Line is 1-based (0 when unknown); Object ("<Kind> <namespace>/<name>") and
// Field (a JSON path into the object) are empty when they do not apply.
type Error struct {
	File   string
	Line   int
	Object string
	Field  string
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Object != "" {
		b.WriteString(e.Object)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Errors is every problem found in one file, sorted by line. Parse returns
// it as its error; use errors.As to get at the individual errors.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is see each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	return es
}
