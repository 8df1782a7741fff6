package lb

// Policy is a cluster's load-balancing algorithm.
type Policy int

// Policies (Envoy lb_policy, plus Weft's least latency).
const (
	PolicyRoundRobin Policy = iota
	PolicyLeastRequest
	PolicyRandom
	PolicyRingHash
	PolicyLeastLatency
)

func (p Policy) String() string {
	switch p {
	case PolicyRoundRobin:
		return "round_robin"
	case PolicyLeastRequest:
		return "least_request"
	case PolicyRandom:
		return "random"
	case PolicyRingHash:
		return "ring_hash"
	case PolicyLeastLatency:
		return "least_latency"
	}
	return "unknown"
}

// Config says how to build a cluster's picker.
type Config struct {
	Policy Policy
	// MinRingSize is the ring hash's minimum number of entries.
	MinRingSize int
	// Local is the calling proxy's locality when the cluster is
	// locality-aware (zone_aware_lb_config); nil otherwise.
	Local *Locality
}

// New builds the picker cfg describes over eps.
func New(cfg Config, eps []*Endpoint) Picker {
	if cfg.Local != nil {
		return newLocality(cfg, eps)
	}
	return newFlat(cfg, eps)
}

func newFlat(cfg Config, eps []*Endpoint) Picker {
	switch cfg.Policy {
	case PolicyLeastRequest:
		return NewLeastRequest(eps)
	case PolicyRandom:
		return NewRandom(eps)
	case PolicyRingHash:
		return NewRingHash(eps, cfg.MinRingSize)
	case PolicyLeastLatency:
		return NewLeastLatency(eps)
	default:
		return NewRoundRobin(eps)
	}
}

var _ Picker = (*localityPicker)(nil)

// localityPicker picks from the first tier with a pickable endpoint: same
// region and zone as the caller, then same region, then every endpoint.
type localityPicker struct {
	all   []*Endpoint
	tiers []Picker
}

func newLocality(cfg Config, eps []*Endpoint) *localityPicker {
	u := usable(eps)
	local := *cfg.Local
	var zone, region []*Endpoint
	for _, ep := range u {
		if ep.Locality.Region == local.Region {
			region = append(region, ep)
			if ep.Locality.Zone == local.Zone {
				zone = append(zone, ep)
			}
		}
	}
	p := &localityPicker{all: u}
	for _, tier := range [][]*Endpoint{zone, region} {
		if len(tier) > 0 && len(tier) < len(u) {
			p.tiers = append(p.tiers, newFlat(cfg, tier))
		}
	}
	p.tiers = append(p.tiers, newFlat(cfg, u))
	return p
}

func (p *localityPicker) Pick() *Endpoint { return p.PickFor(&Context{}) }

func (p *localityPicker) PickFor(c *Context) *Endpoint {
	for _, t := range p.tiers {
		if ep := t.PickFor(c); ep != nil {
			return ep
		}
	}
	return nil
}

func (p *localityPicker) Endpoints() []*Endpoint { return p.all }
