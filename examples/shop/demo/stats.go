package demo

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/examples/shop/app"
)

// route is one hop of a checkout: the service called and the path.
type route struct {
	service, path string
}

func (r route) String() string { return "GET " + r.path + " (" + r.service + ")" }

// routeOrder is the order the table lists routes in.
var routeOrder = [...]route{
	{app.RoleAPIGateway, app.PathCheckout},
	{app.RoleOrder, app.PathOrder},
	{app.RolePayment, app.PathPay},
	{app.RoleInventory, app.PathReserve},
}

// routeStats accumulates one route's outcomes.
type routeStats struct {
	requests  int
	errors    int
	latencies []time.Duration
	endpoints map[string]int
	lastErr   string
}

// sample is one hop of one request as observed.
type sample struct {
	route    route
	at       time.Time // when the checkout started
	latency  time.Duration
	instance string
	err      string
}

// stats is every route's outcomes; safe for concurrent use.
type stats struct {
	mu     sync.Mutex
	routes map[route]*routeStats
	// served[instance] lists when checkouts that the instance served started.
	served map[string][]time.Time
}

func newStats() *stats {
	return &stats{routes: map[route]*routeStats{}, served: map[string][]time.Time{}}
}

func (s *stats) add(smp sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.routes[smp.route]
	if rs == nil {
		rs = &routeStats{endpoints: map[string]int{}}
		s.routes[smp.route] = rs
	}
	rs.requests++
	rs.latencies = append(rs.latencies, smp.latency)
	if smp.err != "" {
		rs.errors++
		rs.lastErr = smp.err
	}
	if smp.instance != "" {
		rs.endpoints[smp.instance]++
		s.served[smp.instance] = append(s.served[smp.instance], smp.at)
	}
}

// addReply records the hops below a checkout from its reply.
func (s *stats) addReply(at time.Time, r *app.Reply) {
	if r == nil {
		return
	}
	for _, c := range r.Calls {
		smp := sample{
			route:   route{service: c.Service, path: pathOf(c.URL)},
			at:      at,
			latency: time.Duration(c.LatencyMS * float64(time.Millisecond)),
			err:     c.Error,
		}
		if c.Reply != nil {
			smp.instance = c.Reply.Instance
		}
		s.add(smp)
		s.addReply(at, c.Reply)
	}
}

func pathOf(url string) string {
	if i := strings.Index(url, "://"); i >= 0 {
		url = url[i+3:]
	}
	if i := strings.IndexByte(url, '/'); i >= 0 {
		return url[i:]
	}
	return "/"
}

// totalErrors is the number of failed hops over all routes.
func (s *stats) totalErrors() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, rs := range s.routes {
		n += rs.errors
	}
	return n
}

// firstServed is the start of the first checkout at or after t that
// instance served, or false.
func (s *stats) firstServed(instance string, after time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best time.Time
	for _, at := range s.served[instance] {
		if !at.Before(after) && (best.IsZero() || at.Before(best)) {
			best = at
		}
	}
	return best, !best.IsZero()
}

// lastServed is the start of the last checkout that instance served.
func (s *stats) lastServed(instance string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.served[instance]
	if len(ts) == 0 {
		return time.Time{}, false
	}
	return slices.MaxFunc(ts, func(a, b time.Time) int { return a.Compare(b) }), true
}

func (s *stats) write(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tREQUESTS\tERRORS\tP50\tP99\tSERVED BY")
	routes := make([]route, 0, len(s.routes))
	for _, r := range routeOrder {
		if s.routes[r] != nil {
			routes = append(routes, r)
		}
	}
	var extra []route
	for r := range s.routes {
		if !slices.Contains(routes, r) {
			extra = append(extra, r)
		}
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].String() < extra[j].String() })
	routes = append(routes, extra...)
	for _, r := range routes {
		rs := s.routes[r]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", r, rs.requests, rs.errors,
			fmtDur(percentile(rs.latencies, 0.50)), fmtDur(percentile(rs.latencies, 0.99)), endpoints(rs.endpoints))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for _, r := range routes {
		if rs := s.routes[r]; rs.errors > 0 {
			fmt.Fprintf(w, "last error on %s: %s\n", r, rs.lastErr)
		}
	}
	return nil
}

// percentile is the nearest-rank percentile of ds (which it sorts).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}

func endpoints(m map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", n, m[n]))
	}
	return strings.Join(parts, " ")
}
