package model

import (
	"cmp"
	"maps"
	"slices"
)

// Namespace is a namespace's mesh-relevant metadata (a v1 Namespace object
// in the file registry): its annotations, e.g. mesh.AnnotationMTLSMode.
type Namespace struct {
	Name        string
	Annotations map[string]string
}

// WithNamespaces returns a copy of s that also holds namespaces, sorted by
// name (deep copies).
func (s State) WithNamespaces(namespaces []Namespace) State {
	s.Namespaces = nil
	for _, n := range namespaces {
		n.Annotations = maps.Clone(n.Annotations)
		s.Namespaces = append(s.Namespaces, n)
	}
	slices.SortFunc(s.Namespaces, func(a, b Namespace) int { return cmp.Compare(a.Name, b.Name) })
	return s
}

// Namespace finds a namespace by name; a namespace no object declares has
// no annotations.
func (s State) Namespace(name string) (Namespace, bool) {
	i, ok := slices.BinarySearchFunc(s.Namespaces, name, func(n Namespace, k string) int { return cmp.Compare(n.Name, k) })
	if !ok {
		return Namespace{Name: name}, false
	}
	return s.Namespaces[i], true
}
