package inject

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// PatchOp is one RFC 6902 operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// CreatePatch returns the JSON patch that turns the JSON form of from into
// the JSON form of to. Objects are compared member by member (an added or
// changed member is an "add", which replaces an existing member, so the
// patch also applies when the stored object spells a default differently);
// arrays and scalars that differ are replaced whole. Operations are sorted
// by path, so the patch is deterministic.
func CreatePatch(from, to any) ([]byte, error) {
	a, err := toJSONValue(from)
	if err != nil {
		return nil, fmt.Errorf("patch: from: %w", err)
	}
	b, err := toJSONValue(to)
	if err != nil {
		return nil, fmt.Errorf("patch: to: %w", err)
	}
	ops := []PatchOp{}
	ops = diff(ops, "", a, b)
	out, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	return out, nil
}

func toJSONValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func diff(ops []PatchOp, path string, a, b any) []PatchOp {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		if !reflect.DeepEqual(a, b) {
			if path == "" {
				// Whole-document replacement: only when the root is not an object.
				return append(ops, PatchOp{Op: "replace", Path: "", Value: b})
			}
			ops = append(ops, PatchOp{Op: "add", Path: path, Value: b})
		}
		return ops
	}
	keys := make([]string, 0, len(am)+len(bm))
	for k := range am {
		keys = append(keys, k)
	}
	for k := range bm {
		if _, ok := am[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := path + "/" + escapePointer(k)
		av, inA := am[k]
		bv, inB := bm[k]
		switch {
		case !inB:
			ops = append(ops, PatchOp{Op: "remove", Path: p})
		case !inA:
			ops = append(ops, PatchOp{Op: "add", Path: p, Value: bv})
		default:
			ops = diff(ops, p, av, bv)
		}
	}
	return ops
}

// escapePointer escapes one JSON pointer reference token (RFC 6901).
func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
