package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/examples/shop/app"
)

// Issue 5's measurements that need faults changed while the mesh runs
// (the shop app's run-time fault control, --fault-admin) or many
// endpoints: the breaker cycle with its timings, least latency, cluster
// limits, round robin and weighted distributions, consistent hashing.

// faultAdminPort is where a test workload's app serves its fault control
// API, on the workload's own loopback address (no Service names it).
const faultAdminPort = 19901

// faultAdminFlag turns the fault control API on in a shop command line
// (the launcher fills in the address).
var faultAdminFlag = "--fault-admin={{.Address}}:" + strconv.Itoa(faultAdminPort)

// adminClient talks to the apps' fault control APIs directly (no proxy).
var adminClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}

func (e *env) faultAdmin(t testing.TB, workload, method, body string) app.FaultStats {
	t.Helper()
	w, ok := e.m.Workload(workload)
	if !ok {
		t.Fatalf("no workload %s", workload)
	}
	url := "http://" + net.JoinHostPort(w.Address, strconv.Itoa(faultAdminPort)) + "/fault"
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s %s: %s %s", method, url, body, resp.Status, data)
	}
	var st app.FaultStats
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("%s %s: %v: %s", method, url, err, data)
	}
	return st
}

// setFault replaces workload's fault (a Fault as JSON; "" = healthy).
func (e *env) setFault(t testing.TB, workload, fault string) {
	t.Helper()
	if fault == "" {
		e.faultAdmin(t, workload, http.MethodDelete, "")
		return
	}
	e.faultAdmin(t, workload, http.MethodPut, fault)
}

// faultStats returns what workload's app counted.
func (e *env) faultStats(t testing.TB, workload string) app.FaultStats {
	t.Helper()
	return e.faultAdmin(t, workload, http.MethodGet, "")
}

// liveBase is the base of the live mesh's addresses; pool4Out moves
// pool-4 out of the pool Services (its label changes).
type liveParams struct {
	Base     string
	Pool4Out bool
}

const breakerBase = time.Second

func renderLiveMesh(p liveParams) []byte {
	var b bytes.Buffer
	ip := func(n int) string { return fmt.Sprintf("%s.%d", p.Base, n) }
	fmt.Fprintf(&b, `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {address: %s, serviceAccount: client}
`, ip(10))
	workload := func(name, label string, n int, weight int, flags string) {
		fmt.Fprintf(&b, `---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: %s
  namespace: shop
  labels: {app: %s}
  annotations:
    local.weft.dev/command: >-
      {{.BinDir}}/shop --role=payment --instance={{.Name}} --listen={{.Address}}:{{.Port "http"}} %s
spec:
  address: %s
  serviceAccount: %s
  ports: [{name: http, port: 8080}]
`, name, label, flags, ip(n), label)
		if weight > 0 {
			fmt.Fprintf(&b, "  weight: %d\n", weight)
		}
	}
	workload("solo-1", "solo", 20, 0, faultAdminFlag)
	for i := 1; i <= 4; i++ {
		label := "pool"
		if i == 4 && p.Pool4Out {
			label = "pool-out"
		}
		workload(fmt.Sprintf("pool-%d", i), label, 29+i, 0, faultAdminFlag)
	}
	for i, w := range []int{1, 2, 7} {
		workload(fmt.Sprintf("w-%d", i+1), "w", 40+i, w, "")
	}
	workload("limited-1", "limited", 50, 0, "--fault-delay=800ms")
	for _, s := range [][2]string{{"solo", "solo"}, {"rr", "pool"}, {"ll", "pool"}, {"sticky", "pool"}, {"capped", "pool"}, {"weighted", "w"}, {"limited", "limited"}} {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata: {name: %s, namespace: shop}
spec:
  selector: {app: %s}
  ports: [{name: http, port: 8080, targetPort: http}]
`, s[0], s[1])
	}
	policy := func(svc, spec string) {
		fmt.Fprintf(&b, "---\napiVersion: weft.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: %s, namespace: shop}\nspec:\n  targetRef: {name: %s}\n%s", svc, svc, spec)
	}
	// The breaker: 3 failures in a row eject for n × 1s; no retries, so
	// the client sees every try.
	policy("solo", fmt.Sprintf("  outlierDetection: {consecutive5xx: 3, baseEjectionTime: %s}\n  retry: {attempts: 0}\n", breakerBase))
	quiet := "  outlierDetection: {consecutive5xx: 0}\n"
	policy("rr", quiet)
	policy("ll", quiet+"  loadBalancer: {algorithm: LeastLatency}\n")
	policy("sticky", quiet+"  loadBalancer: {algorithm: RingHash, consistentHash: {header: x-user}}\n")
	policy("weighted", quiet)
	// One failure ejects for a minute, but at most half of the pool.
	policy("capped", "  outlierDetection: {consecutive5xx: 1, baseEjectionTime: 1m, maxEjectionPercent: 50}\n  retry: {attempts: 0}\n")
	policy("limited", quiet+"  connectionPool: {maxRequests: 2}\n  retry: {attempts: 0}\n")
	return b.Bytes()
}

func TestResilienceLive(t *testing.T) {
	p := liveParams{Base: randomBase()}
	e := startMeshData(t, p.Base, renderLiveMesh(p))

	t.Run("breaker opens, fails fast, half-opens and closes on recovery, on time", func(t *testing.T) {
		testBreakerCycle(t, e)
	})
	t.Run("cluster limit fails fast with 503 and the reason", func(t *testing.T) {
		testClusterLimit(t, e)
	})
	t.Run("round robin and weighted over 10k requests", func(t *testing.T) {
		for _, tc := range []struct {
			svc  string
			want map[string]float64
		}{
			{"rr", map[string]float64{"pool-1": 0.25, "pool-2": 0.25, "pool-3": 0.25, "pool-4": 0.25}},
			{"weighted", map[string]float64{"w-1": 0.1, "w-2": 0.2, "w-3": 0.7}},
		} {
			const n = 10000
			start := time.Now()
			got := shares(t, e.hammer(t, svcURL(tc.svc), n, 8))
			t.Logf("%s: %d requests in %s: %v", tc.svc, n, time.Since(start).Round(time.Millisecond), got)
			for inst, want := range tc.want {
				if math.Abs(got[inst]-want) > 0.02 {
					t.Errorf("%s: %s share %.4f, want %.2f ± 0.02", tc.svc, inst, got[inst], want)
				}
			}
		}
	})
	t.Run("least latency moves load away from a slowed endpoint", func(t *testing.T) {
		testLeastLatency(t, e)
	})
	t.Run("at most maxEjectionPercent of the endpoints are ejected at once", func(t *testing.T) {
		testEjectionCap(t, e)
	})
	t.Run("consistent hash keeps keys and moves about 1/N when an endpoint leaves", func(t *testing.T) {
		testConsistentHash(t, e, p)
	})
}

// shares counts each instance's share of rs; any failed request fails t.
func shares(t *testing.T, rs []resp) map[string]float64 {
	t.Helper()
	count := map[string]int{}
	for _, r := range rs {
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("status %d (err %v)", r.status, r.err)
		}
		count[r.instance]++
	}
	out := map[string]float64{}
	for k, v := range count {
		out[k] = float64(v) / float64(len(rs))
	}
	return out
}

// testBreakerCycle drives solo (one endpoint; consecutive5xx 3, base
// ejection 1s) one request at a time, every 5 ms, and times what the
// client sees: three upstream 503s open the breaker; while it is open the
// sidecar answers 503 no_healthy_upstream by itself at once and the app
// sees nothing; after 1s one probe reaches the app (still failing: ejected
// again, for 2 × 1s); the fault is then removed, and after 2s the next
// probe succeeds and the breaker stays closed.
func testBreakerCycle(t *testing.T, e *env) {
	url := svcURL("solo")
	// The mesh is up: solo answers.
	if r := e.send(t.Context(), url); r.status != http.StatusOK {
		t.Fatalf("solo before the fault: %d %v", r.status, r.err)
	}
	e.setFault(t, "solo-1", `{"errorRate":1}`)
	defer e.setFault(t, "solo-1", "")
	logAt := e.logOffset(sidecarLogName("client"))

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pace := time.NewTicker(5 * time.Millisecond)
	defer pace.Stop()
	next := func() resp {
		<-pace.C
		r := e.send(ctx, url)
		if r.err != nil {
			t.Fatalf("request failed: %v", r.err)
		}
		return r
	}
	// failFast sends until a request reaches the app again and returns
	// that try, checking that every request before it was refused by the
	// sidecar at once.
	failFast := func(phase string) (resp, int, time.Duration) {
		refused, slowest := 0, time.Duration(0)
		for ctx.Err() == nil {
			r := next()
			if r.overloaded == "" {
				return r, refused, slowest
			}
			if r.status != http.StatusServiceUnavailable || r.overloaded != "no_healthy_upstream" {
				t.Fatalf("%s: %d overloaded=%q, want 503 no_healthy_upstream", phase, r.status, r.overloaded)
			}
			refused++
			slowest = max(slowest, r.elapsed)
		}
		t.Fatalf("%s: no request reached the app within the deadline", phase)
		return resp{}, 0, 0
	}

	// 1. Three failures in a row reach the app; the third opens the breaker.
	// The breaker opened somewhere inside the third failure's round trip
	// [openedFrom, opened]; the client's clock only brackets it.
	var openedFrom, opened time.Time
	for i := range 3 {
		r := next()
		if r.overloaded != "" || r.status != http.StatusServiceUnavailable {
			t.Fatalf("failure %d: %d overloaded=%q, want the app's 503", i+1, r.status, r.overloaded)
		}
		openedFrom, opened = r.start, r.start.Add(r.elapsed)
	}
	appBefore := e.faultStats(t, "solo-1").Requests

	// 2. Open: fail fast until the half-open probe reaches the app.
	probe1, refused1, slowest1 := failFast("open")
	if probe1.status != http.StatusServiceUnavailable {
		t.Fatalf("first probe: %d, want the app's 503 (the fault is still on)", probe1.status)
	}
	open1 := probe1.start.Sub(opened)
	e.setFault(t, "solo-1", "") // recovery
	probe1End := probe1.start.Add(probe1.elapsed)
	if got := e.faultStats(t, "solo-1").Requests - appBefore; got != 1 {
		t.Errorf("the app saw %d requests while the breaker was open and half-open, want 1 (the probe)", got)
	}

	// 3. Ejected again for 2 × base; the next probe succeeds.
	probe2, refused2, slowest2 := failFast("open again")
	if probe2.status != http.StatusOK {
		t.Fatalf("second probe: %d, want 200 (the fault is off)", probe2.status)
	}
	open2 := probe2.start.Sub(probe1End)

	// 4. Closed: traffic flows again.
	for i := range 20 {
		if r := next(); r.status != http.StatusOK || r.overloaded != "" {
			t.Fatalf("request %d after recovery: %d overloaded=%q", i+1, r.status, r.overloaded)
		}
	}
	t.Logf("open %s (%d refused, slowest %s), then the probe failed; open again %s (%d refused, slowest %s), then closed",
		open1.Round(time.Millisecond), refused1, slowest1.Round(time.Microsecond), open2.Round(time.Millisecond), refused2, slowest2.Round(time.Microsecond))
	// Timings: the configured ejection times are lower bounds. The client
	// only sees each ejection's start and end inside a round trip, so the
	// lower bound is checked on the widest bracket (from the start of the
	// request that ejected to the end of the probe): a response delayed on
	// a busy machine cannot make a correct ejection look short. The upper
	// bounds use the narrow bracket and leave room for a busy machine.
	if longest1 := probe1End.Sub(openedFrom); longest1 < breakerBase {
		t.Errorf("first ejection lasted at most %s, want at least %s", longest1, breakerBase)
	}
	if open1 > breakerBase+750*time.Millisecond {
		t.Errorf("first ejection lasted %s, want %s", open1, breakerBase)
	}
	if longest2 := probe2.start.Add(probe2.elapsed).Sub(probe1.start); longest2 < 2*breakerBase {
		t.Errorf("second ejection lasted at most %s, want at least %s (2 × base)", longest2, 2*breakerBase)
	}
	if open2 > 2*breakerBase+750*time.Millisecond {
		t.Errorf("second ejection lasted %s, want %s (2 × base)", open2, 2*breakerBase)
	}
	if refused1 == 0 || refused2 == 0 {
		t.Errorf("no request was refused while open (%d, %d)", refused1, refused2)
	}
	if slowest1 > 250*time.Millisecond || slowest2 > 250*time.Millisecond {
		t.Errorf("refusals while open took up to %s / %s: not failing fast", slowest1, slowest2)
	}
	// Every state change is counted by the client sidecar.
	client, _ := e.m.Workload("client")
	got, err := series(t.Context(), client.Address, "weft_cluster_breaker_", "weft_cluster_ejections_total")
	if err != nil {
		t.Fatal(err)
	}
	cluster := `{cluster="outbound|8080||solo.shop.svc.cluster.local"}`
	for name, want := range map[string]float64{
		"weft_cluster_ejections_total": 2, "weft_cluster_breaker_opened_total": 2,
		"weft_cluster_breaker_half_opened_total": 2, "weft_cluster_breaker_closed_total": 1,
	} {
		if got[name+cluster] != want {
			t.Errorf("%s%s = %v, want %v", name, cluster, got[name+cluster], want)
		}
	}
	for _, want := range []string{`"endpoint ejected"`, `"endpoint restored"`} {
		if _, ok := e.waitLogLine(sidecarLogName("client"), logAt, 5*time.Second, func(l string) bool {
			return strings.Contains(l, want) && strings.Contains(l, "solo")
		}); !ok {
			t.Errorf("the client sidecar did not log %s for solo", want)
		}
	}
}

func sidecarLogName(workload string) string { return workload + ".shop/sidecar" }

// testClusterLimit sends 8 requests at once to limited (one endpoint that
// answers after 800ms, maxRequests 2): two are served, six are refused by
// the sidecar at once with 503 and x-weft-overloaded: max_requests.
func testClusterLimit(t *testing.T, e *env) {
	const n = 8
	url := svcURL("limited")
	rs := make([]resp, n)
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-startGate
			rs[i] = e.send(t.Context(), url)
		})
	}
	close(startGate)
	wg.Wait()
	ok, refused := 0, 0
	for _, r := range rs {
		switch {
		case r.err != nil:
			t.Errorf("request failed: %v", r.err)
		case r.status == http.StatusOK:
			ok++
		case r.status == http.StatusServiceUnavailable && r.overloaded == "max_requests":
			refused++
			if r.elapsed > 400*time.Millisecond {
				t.Errorf("refusal took %s: not failing fast (the upstream takes 800ms)", r.elapsed)
			}
		default:
			t.Errorf("status %d overloaded=%q", r.status, r.overloaded)
		}
	}
	t.Logf("%d served, %d refused with max_requests", ok, refused)
	if ok != 2 || refused != n-2 {
		t.Errorf("%d served and %d refused, want 2 and %d (maxRequests 2)", ok, refused, n-2)
	}
}

// testLeastLatency measures ll (the pool's four endpoints, LeastLatency)
// with every endpoint fast, then slows the endpoint that got the most
// requests by 60ms (so its drop cannot be a latency spike it already had:
// on a busy machine peak EWMA holds any spike for seconds) and measures
// again.
func testLeastLatency(t *testing.T, e *env) {
	const n = 2000
	before := shares(t, e.hammer(t, svcURL("ll"), n, 8))
	slowed := "pool-1"
	for _, w := range []string{"pool-1", "pool-2", "pool-3", "pool-4"} {
		if before[w] > before[slowed] {
			slowed = w
		}
	}
	t.Logf("all fast: %v; slowing %s", before, slowed)
	e.setFault(t, slowed, `{"delay":"60ms"}`)
	defer e.setFault(t, slowed, "")
	slowBefore := e.faultStats(t, slowed).Requests
	slow := shares(t, e.hammer(t, svcURL("ll"), n, 8))
	slowReqs := e.faultStats(t, slowed).Requests - slowBefore
	t.Logf("%s 60ms slower: %v (its app counted %d of %d)", slowed, slow, slowReqs, n)
	if slow[slowed] > 0.05 {
		t.Errorf("the slowed endpoint got %.3f of the requests (%.3f before), want < 0.05 (round robin would give 0.25)", slow[slowed], before[slowed])
	}
}

// testEjectionCap makes every pool endpoint fail and sends to capped
// (consecutive5xx 1, maxEjectionPercent 50): two of the four endpoints are
// ejected, the other two stay in rotation (their failures reach the
// client; the sidecar never runs out of endpoints), and the refused
// ejections are counted.
func testEjectionCap(t *testing.T, e *env) {
	pool := []string{"pool-1", "pool-2", "pool-3", "pool-4"}
	for _, w := range pool {
		e.setFault(t, w, `{"errorRate":1}`)
	}
	defer func() {
		for _, w := range pool {
			e.setFault(t, w, "")
		}
	}()
	const n = 40
	served := map[string]int{}
	for i := range n {
		r := e.send(t.Context(), svcURL("capped"))
		if r.err != nil || r.status != http.StatusServiceUnavailable || r.overloaded != "" {
			t.Fatalf("request %d: %d overloaded=%q %v; want the app's 503", i, r.status, r.overloaded, r.err)
		}
		if i >= n/2 {
			served[strings.Fields(r.upstream)[0]]++
		}
	}
	client, _ := e.m.Workload("client")
	got, err := series(t.Context(), client.Address, "weft_cluster_ejections")
	if err != nil {
		t.Fatal(err)
	}
	cluster := `{cluster="outbound|8080||capped.shop.svc.cluster.local"}`
	t.Logf("last %d requests served by %v; ejections %v, refused by the cap %v", n/2, served,
		got["weft_cluster_ejections_total"+cluster], got["weft_cluster_ejections_overflow_total"+cluster])
	if len(served) != 2 {
		t.Errorf("after the ejections, %d endpoints served (%v), want the 2 the cap keeps", len(served), served)
	}
	for w, k := range served {
		// Round robin gives the ejected endpoints' turns to both
		// survivors alike.
		if k < n/2*3/10 {
			t.Errorf("%s served %d of the last %d: the survivors do not share the ejected ones' turns", w, k, n/2)
		}
	}
	if got["weft_cluster_ejections_total"+cluster] != 2 {
		t.Errorf("ejections %v, want 2 (50%% of 4)", got["weft_cluster_ejections_total"+cluster])
	}
	if got["weft_cluster_ejections_overflow_total"+cluster] < 1 {
		t.Error("no ejection was refused by maxEjectionPercent")
	}
}

// testConsistentHash sends 400 keys (x-user) to sticky (RingHash over the
// pool) twice, then takes pool-4 out of the pool and sends them again.
func testConsistentHash(t *testing.T, e *env, p liveParams) {
	const keys = 400
	owner := map[string]string{}
	for round := range 2 {
		for k := range keys {
			user := fmt.Sprintf("user-%d", k)
			r := e.send(t.Context(), svcURL("sticky"), "x-user", user)
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("%s: %d %v", user, r.status, r.err)
			}
			if round == 0 {
				owner[user] = r.instance
			} else if owner[user] != r.instance {
				t.Fatalf("%s went to %s, then %s", user, owner[user], r.instance)
			}
		}
	}
	var onLeaver []string
	for u, o := range owner {
		if o == "pool-4" {
			onLeaver = append(onLeaver, u)
		}
	}
	if len(onLeaver) == 0 {
		t.Fatal("no key on pool-4")
	}
	p.Pool4Out = true
	since := e.writeFile(t, renderLiveMesh(p))
	took := e.waitDrainedHdr(t, svcURL("sticky"), "pool-4", since, onLeaver[0], 5*time.Second)
	t.Logf("pool-4 left the pool %s after the edit", took.Round(time.Millisecond))
	moved, movedOthers := 0, 0
	for u, o := range owner {
		r := e.send(t.Context(), svcURL("sticky"), "x-user", u)
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("%s: %d %v", u, r.status, r.err)
		}
		if r.instance == "pool-4" {
			t.Fatalf("%s still on pool-4 after it left", u)
		}
		if r.instance != o {
			moved++
			if o != "pool-4" {
				movedOthers++
			}
		}
	}
	frac := float64(moved) / keys
	t.Logf("keys on pool-4: %d/%d; moved: %d (%.3f), of which not on pool-4: %d", len(onLeaver), keys, moved, frac, movedOthers)
	if movedOthers != 0 {
		t.Errorf("%d keys not on the leaving endpoint moved", movedOthers)
	}
	if frac < 0.15 || frac > 0.35 {
		t.Errorf("%.3f of the keys moved, want about 1/4", frac)
	}
}

// waitDrainedHdr sends the key's request until instance no longer serves
// it, and returns how long after since that was.
func (e *env) waitDrainedHdr(t *testing.T, url, instance string, since time.Time, user string, deadline time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	for ctx.Err() == nil {
		r := e.send(ctx, url, "x-user", user)
		if r.err == nil && r.status == http.StatusOK && r.instance != instance {
			return time.Since(since)
		}
	}
	t.Fatalf("%s still served %s after %s", instance, user, deadline)
	return 0
}
