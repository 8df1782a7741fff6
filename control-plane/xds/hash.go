package xds

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// numTypes is len(typeURLs).
const numTypes = len(typeURLs)

// typeIndex is a type URL's index in typeURLs (-1 if none).
func typeIndex(typeURL string) int {
	for i, t := range typeURLs {
		if t == typeURL {
			return i
		}
	}
	return -1
}

// typeSum is the hash of one type's resources of a node.
type typeSum = [sha256.Size]byte

// itemHash is one resource's hash: of its deterministic wire form (for a
// RouteConfiguration, of its virtual hosts' hashes), also as the hex
// string delta ADS compares as the resource's version.
type itemHash struct {
	sum [sha256.Size]byte
	hex string
	// wire, for a ClusterLoadAssignment or a Cluster, is its stand-in in snapshots
	// (nil: the resource itself); see standIn.
	wire types.Resource
}

// hashCache hashes resources once per object: translations share objects
// between proxies (shapes, translate.Index) and keep them across pushes
// when nothing changed, so a proxy's sync costs map lookups, not
// marshalling. Objects are never modified once built (streams only
// marshal them), so a pointer names its content. Two generations:
// an object not looked up during a whole generation is dropped. s.mu
// guards it.
type hashCache struct {
	cur, old map[types.Resource]*itemHash
}

func newHashCache() *hashCache {
	return &hashCache{cur: map[types.Resource]*itemHash{}, old: map[types.Resource]*itemHash{}}
}

// rotate starts a new generation (once per push).
func (c *hashCache) rotate() {
	c.old, c.cur = c.cur, make(map[types.Resource]*itemHash, len(c.cur))
}

// item returns the hash of one resource.
func (c *hashCache) item(r types.Resource) (*itemHash, error) {
	if h, ok := c.cur[r]; ok {
		return h, nil
	}
	h, ok := c.old[r]
	if !ok {
		var sum [sha256.Size]byte
		if rc, isRC := r.(*route.RouteConfiguration); isRC && onlyVirtualHosts(rc) {
			// Each proxy's outbound RouteConfiguration is its own object
			// but its virtual hosts are shared (translate.Index): hash
			// them once each and the route as the list of their hashes.
			hh := sha256.New()
			hh.Write([]byte("RouteConfiguration\x00" + rc.GetName() + "\x00"))
			for _, vh := range rc.GetVirtualHosts() {
				vhh, err := c.item(vh)
				if err != nil {
					return nil, err
				}
				hh.Write(vhh.sum[:])
			}
			copy(sum[:], hh.Sum(nil))
		} else {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err != nil {
				return nil, fmt.Errorf("xds: hash %s: %w", cache.GetResourceName(r), err)
			}
			sum = sha256.Sum256(b)
			h = &itemHash{sum: sum, hex: hex.EncodeToString(sum[:])}
			switch r.(type) {
			case *endpoint.ClusterLoadAssignment, *cluster.Cluster:
				h.wire = standIn(r, b)
			}
		}
		if h == nil {
			h = &itemHash{sum: sum, hex: hex.EncodeToString(sum[:])}
		}
	}
	c.cur[r] = h
	return h, nil
}

// keep carries the hashes of resources over into the current generation
// without hashing them (a translation kept unchanged: its objects are
// still in use).
func (c *hashCache) keep(byType [][]types.Resource) {
	for _, items := range byType {
		for _, it := range items {
			if _, ok := c.cur[it]; ok {
				continue
			}
			if h, ok := c.old[it]; ok {
				c.cur[it] = h
			}
		}
	}
}

// standIn returns what snapshots carry for an assignment or a cluster
// whose deterministic wire form is b: a message of the same type with its
// name (field 1, so cache.GetResourceName still reads it) and every other
// field as the unknown bytes of b that follow it. Deterministic
// marshalling writes known fields in field-number order and unknown bytes
// last, so the stand-in marshals to exactly b, by a copy: SotW re-sends
// every assignment of every affected proxy on each endpoint change, and
// marshalling the same shared objects once per stream (their metadata
// maps in deterministic order) was half of the control plane's CPU under
// churn; clusters are re-sent whole on every connect. It returns r itself
// when field 1 is not the name or b does not start with it.
func standIn(r types.Resource, b []byte) types.Resource {
	name := cache.GetResourceName(r)
	fd := r.ProtoReflect().Descriptor().Fields().ByNumber(1)
	if name == "" || fd == nil || fd.Kind() != protoreflect.StringKind || r.ProtoReflect().Get(fd).String() != name {
		return r
	}
	prefix := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), name)
	if !bytes.HasPrefix(b, prefix) {
		return r
	}
	out := r.ProtoReflect().New()
	out.Set(fd, protoreflect.ValueOfString(name))
	out.SetUnknown(protoreflect.RawFields(b[len(prefix):]))
	return out.Interface()
}

// snapshotItem is what a snapshot carries for r: its stand-in when it has
// one (it was hashed: see standIn), else r.
func (c *hashCache) snapshotItem(r types.Resource) types.Resource {
	if c != nil {
		if h, ok := c.cur[r]; ok && h.wire != nil {
			return h.wire
		}
		if h, ok := c.old[r]; ok && h.wire != nil {
			return h.wire
		}
	}
	return r
}

// onlyVirtualHosts reports whether rc sets no field but its name and
// virtual hosts (what translate makes).
func onlyVirtualHosts(rc *route.RouteConfiguration) bool {
	only := true
	rc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		only = fd.Name() == "name" || fd.Name() == "virtual_hosts"
		return only
	})
	return only
}

// sum hashes resources (sorted by name) as a list: the hashes of its items
// in order. The empty list hashes to emptySum.
func (c *hashCache) sum(items []types.Resource) (typeSum, error) {
	if len(items) == 0 {
		return emptySum, nil
	}
	h := sha256.New()
	for _, it := range items {
		ih, err := c.item(it)
		if err != nil {
			return typeSum{}, err
		}
		h.Write(ih.sum[:])
	}
	var out typeSum
	copy(out[:], h.Sum(nil))
	return out, nil
}

// versionMap is the delta version map of resources: name -> hash.
func (c *hashCache) versionMap(items []types.Resource) (map[string]string, error) {
	m := make(map[string]string, len(items))
	for _, it := range items {
		ih, err := c.item(it)
		if err != nil {
			return nil, err
		}
		m[cache.GetResourceName(it)] = ih.hex
	}
	return m, nil
}

// emptySum is the sum of no resources.
var emptySum = sha256.Sum256(nil)
