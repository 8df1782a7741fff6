package demo

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	yaml "go.yaml.in/yaml/v3"
)

// setLabel sets metadata.labels[key] = value on the object of that kind and
// name in a multi-document YAML file, keeping the rest of the file as it is
// (comments included, re-indented by two).
func setLabel(data []byte, kind, name, key, value string) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	found := false
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("demo: mesh file: %w", err)
		}
		if root := docRoot(&doc); root != nil && scalar(root, "kind") == kind {
			meta := mapValue(root, "metadata")
			if meta != nil && scalar(meta, "name") == name {
				labels := mapValue(meta, "labels")
				if labels == nil {
					labels = &yaml.Node{Kind: yaml.MappingNode}
					meta.Content = append(meta.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "labels"}, labels)
				}
				if v := mapValue(labels, key); v != nil {
					v.Value, v.Tag, v.Style = value, "!!str", yaml.DoubleQuotedStyle
				} else {
					labels.Content = append(labels.Content,
						&yaml.Node{Kind: yaml.ScalarNode, Value: key},
						&yaml.Node{Kind: yaml.ScalarNode, Value: value, Tag: "!!str", Style: yaml.DoubleQuotedStyle})
				}
				found = true
			}
		}
		if err := enc.Encode(&doc); err != nil {
			return nil, fmt.Errorf("demo: mesh file: %w", err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("demo: mesh file: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("demo: mesh file has no %s %q", kind, name)
	}
	return out.Bytes(), nil
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		return doc.Content[0]
	}
	return nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(m *yaml.Node, key string) string {
	if v := mapValue(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}
