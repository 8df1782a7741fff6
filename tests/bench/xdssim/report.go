package xdssim

import (
	"fmt"
	"io"
	"time"
)

// Print writes the report as text.
func (r *Report) Print(w io.Writer) {
	p := func(f string, a ...any) { _, _ = fmt.Fprintf(w, f+"\n", a...) }
	p("xdssim: %s, %d proxies, %d services, %d endpoints", r.Mode, r.Proxies, r.Services, r.Endpoints)
	p("  connect: all ACKed in %v; control plane %.1f CPU s; first config %s per proxy", r.ConnectTime.Round(time.Millisecond), r.CPUSecConnect, kb(float64(r.InitialBytes)))
	n := float64(max(r.Proxies, 1))
	p("  control plane RSS: %d MB idle, %d MB connected (%d MB anonymous) = %s per proxy (target < 100 KB); %d MB after the single changes = %s per proxy",
		r.RSSBaseline>>20, r.RSSBytes>>20, r.RSSAnon>>20, kb(float64(r.RSSBytes-r.RSSBaseline)/n), r.RSSSteady>>20, kb(float64(r.RSSSteady-r.RSSBaseline)/n))
	p("    peak during connect %d MB = %s per proxy; nothing subtracted: %s per proxy connected, %s after the changes",
		r.RSSPeak>>20, kb(float64(r.RSSPeak-r.RSSBaseline)/n), kb(float64(r.RSSBytes)/n), kb(float64(r.RSSSteady)/n))
	p("  control plane live heap (after a GC): %d MB idle, %d MB connected = %s per proxy; goroutine stacks %s per proxy",
		r.HeapBaseline>>20, r.HeapConnected>>20, kb(float64(r.HeapConnected-r.HeapBaseline)/float64(max(r.Proxies, 1))),
		kb(float64(r.StackConnected-r.StackBaseline)/float64(max(r.Proxies, 1))))
	for i, c := range r.Changes {
		p("  change %d: %d proxies affected; file write -> ACK p50 %v p99 %v max %v; EDS %s per proxy; %.2f CPU s",
			i, c.Affected, c.P50.Round(time.Millisecond), c.P99.Round(time.Millisecond), c.Max.Round(time.Millisecond), kb(c.BytesPerProx), c.CPUSec)
	}
	if c := r.Churn; c != nil {
		p("  churn: %d changes at %.0f/s over %v -> %.0f pushes completed (%.1f changes per push), %d EDS responses per affected proxy; push latency mean %v p99 %v; %.1f CPU s; drained %v after the last change",
			c.Changes, c.Rate, c.Duration, c.PushesTotal, float64(c.Changes)/max(c.PushesTotal, 1), c.EDSPushes, c.Mean.Round(time.Millisecond), c.P99.Round(time.Millisecond), c.CPUSec, c.DrainTime.Round(time.Millisecond))
		for _, l := range c.LagBySecond {
			p("    t=%2ds pushes completed %d, latency mean %v p99 %v", l.Second, l.Pushes, l.Mean.Round(time.Millisecond), l.P99.Round(time.Millisecond))
		}
	}
	if r.StormTime > 0 {
		p("  reconnect storm: all %d proxies ACKed again in %v (%.1f CPU s)", r.Proxies, r.StormTime.Round(time.Millisecond), r.StormCPUSec)
	}
	p("  stream failures (reconnected): %d", r.Disconnections)
}

func kb(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
