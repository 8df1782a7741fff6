package xdssim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuSeconds is the user+system CPU time of process pid (/proc/<pid>/stat).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command (which may hold spaces) in parentheses.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// rss is the resident set size of process pid in bytes (VmRSS).
func rss(pid int) int64 { return procStatus(pid).rss }

// memStatus is the memory lines of /proc/<pid>/status, in bytes.
type memStatus struct {
	rss, anon, file, hwm int64 // VmRSS, RssAnon, RssFile, VmHWM (peak RSS)
}

func procStatus(pid int) memStatus {
	var m memStatus
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.rss
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		case "VmHWM":
			dst = &m.hwm
		default:
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		*dst = kb << 10
	}
	return m
}

// resetPeakRSS resets process pid's VmHWM to its current RSS
// (clear_refs 5), so that a later VmHWM is the peak of what came since.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// metric reads one unlabelled sample from the control plane's /metrics.
func (s *sim) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.debug+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("xdssim: metric %s not found", name)
}

// Metrics returns the control plane's /metrics text lines that start with
// prefix (the push counters and histograms, for the report).
func (s *sim) metricLines(ctx context.Context, prefix string) []string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.debug+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer func() { _ = resp.Body.Close() }()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// hist is a Prometheus histogram read from /metrics.
type hist struct {
	count, sum float64
	le         []float64 // bucket bounds, ascending (+Inf last)
	cum        []float64 // cumulative counts
}

func (h hist) sub(o hist) hist {
	d := hist{count: h.count - o.count, sum: h.sum - o.sum, le: h.le, cum: make([]float64, len(h.cum))}
	for i := range h.cum {
		d.cum[i] = h.cum[i]
		if i < len(o.cum) {
			d.cum[i] -= o.cum[i]
		}
	}
	return d
}

func (h hist) mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / h.count * float64(time.Second))
}

// quantile is the upper bound of the bucket holding quantile q.
func (h hist) quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	for i, c := range h.cum {
		if c >= q*h.count {
			if math.IsInf(h.le[i], 1) {
				if i > 0 {
					return time.Duration(h.le[i-1] * float64(time.Second))
				}
				return 0
			}
			return time.Duration(h.le[i] * float64(time.Second))
		}
	}
	return 0
}

// histogram reads an unlabelled histogram from the control plane's /metrics.
func (s *sim) histogram(ctx context.Context, name string) (hist, error) {
	var h hist
	found := false
	for _, l := range s.metricLines(ctx, name) {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch {
		case f[0] == name+"_count":
			h.count, found = v, true
		case f[0] == name+"_sum":
			h.sum = v
		case strings.HasPrefix(f[0], name+`_bucket{le="`):
			le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(f[0], name+`_bucket{le="`), `"}`), 64)
			if err != nil {
				continue
			}
			h.le, h.cum = append(h.le, le), append(h.cum, v)
		}
	}
	if !found {
		return h, fmt.Errorf("xdssim: histogram %s not found", name)
	}
	return h, nil
}

// liveHeap forces garbage collections in the control plane
// (/debug/pprof/heap?gc=1) and returns its HeapAlloc: the bytes of live
// objects, which unlike RSS (and HeapInuse, which counts whole spans) do
// not keep the high-water mark of a burst; and its StackInuse (goroutine
// stacks, outside the heap).
func (s *sim) liveHeap(ctx context.Context) (heap, stacks int64, err error) {
	// Two collections: objects a sync.Pool dropped at the first (gRPC's
	// buffers after a burst) are still in its victim cache until the
	// second.
	if _, _, err := s.heapStats(ctx); err != nil {
		return 0, 0, err
	}
	return s.heapStats(ctx)
}

// heapStats forces one collection and reads HeapAlloc and StackInuse.
func (s *sim) heapStats(ctx context.Context) (heap, stacks int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.debug+"/debug/pprof/heap?gc=1&debug=1", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	heap, stacks = -1, -1
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			if heap, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
				return 0, 0, err
			}
		}
		if v, ok := strings.CutPrefix(line, "# Stack = "); ok {
			inuse, _, _ := strings.Cut(v, " ")
			if stacks, err = strconv.ParseInt(inuse, 10, 64); err != nil {
				return 0, 0, err
			}
		}
	}
	if heap < 0 || stacks < 0 {
		return 0, 0, fmt.Errorf("xdssim: HeapAlloc or Stack not in the heap profile: %w", sc.Err())
	}
	return heap, stacks, nil
}

// saveProfile writes the control plane's pprof profile at path (e.g.
// "heap?gc=1", "profile?seconds=30") to Config.ProfileDir/file; nothing
// without a ProfileDir.
func (s *sim) saveProfile(ctx context.Context, path, file string) error {
	if s.cfg.ProfileDir == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.debug+"/debug/pprof/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("xdssim: profile %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("xdssim: profile %s: %s", path, resp.Status)
	}
	if err := os.MkdirAll(s.cfg.ProfileDir, 0o755); err != nil {
		return fmt.Errorf("xdssim: %w", err)
	}
	f, err := os.Create(filepath.Join(s.cfg.ProfileDir, file))
	if err != nil {
		return fmt.Errorf("xdssim: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("xdssim: profile %s: %w", path, err)
	}
	return f.Close()
}

// profileAsync starts saveProfile on its own goroutine; the returned
// function waits for it and logs a failure (a profile is an extra, not a
// measurement).
func (s *sim) profileAsync(ctx context.Context, path, file string) (wait func()) {
	if s.cfg.ProfileDir == "" {
		return func() {}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.saveProfile(ctx, path, file) }()
	return func() {
		if err := <-errc; err != nil {
			s.cfg.Log.Warn("profile not saved", "file", file, "err", err)
		}
	}
}
