package file

import (
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// lineOf returns the line (1-based, within the document) of the node a JSON
// path such as "spec.ports[1].port" names, or of its deepest ancestor that
// exists. Indexes may be left out ("spec.ports.port", as json type errors
// spell paths): the first element is used then.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, seg := range splitPath(path) {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		switch {
		case seg.index >= 0:
			if n.Kind != yaml.SequenceNode || seg.index >= len(n.Content) {
				return line
			}
			n = n.Content[seg.index]
			line = n.Line
		default:
			if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
				n = n.Content[0]
			}
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg.key {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return line
			}
		}
	}
	return line
}

type segment struct {
	key   string
	index int // -1 for a key
}

// splitPath splits "a.b[2].c" into a, b, [2], c. Map keys in brackets, as in
// metadata.labels[kubernetes.io/service-name], are keys.
func splitPath(path string) []segment {
	var out []segment
	for path != "" {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return out
			}
			inner := path[1:end]
			if i, err := strconv.Atoi(inner); err == nil {
				out = append(out, segment{index: i})
			} else {
				out = append(out, segment{key: inner, index: -1})
			}
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			out = append(out, segment{key: path[:end], index: -1})
			path = path[end:]
		}
	}
	return out
}
