package outbound

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/mesh"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"

	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/proxy"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// Egress (docs/architecture.md, Egress contract): hosts outside the
// registry, the ALLOW_ANY passthrough and CONNECT tunnels.

// WithRegisterer exports the outbound's own counters (registry-only
// refusals) to reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(h *Handler) { h.reg = reg }
}

func newRefusedCounter(reg prometheus.Registerer) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: mesh.MetricRegistryOnlyRefused,
		Help: "Outbound requests refused because their host is not in the mesh registry (outbound policy REGISTRY_ONLY).",
	})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
					return existing
				}
			}
		}
	}
	return c
}

// notInRegistry answers a request whose host no virtual host matches: with
// ALLOW_ANY a "*" virtual host would have matched, so the policy is
// REGISTRY_ONLY.
func (h *Handler) notInRegistry(w http.ResponseWriter, host string) {
	h.refused.Inc()
	h.log.Info("outbound: host not in the mesh registry", "host", host, "outbound_policy", "REGISTRY_ONLY")
	proxy.Error(w, http.StatusBadGateway, "host %q is not in the mesh registry (outbound policy REGISTRY_ONLY)", host)
}

// originalDst reports whether the route's cluster is the ORIGINAL_DST
// passthrough.
func originalDst(tbl *router.Table, name string) bool {
	if tbl.Snapshot == nil {
		return false
	}
	c := tbl.Snapshot.Clusters[name]
	return c != nil && c.Type == cluster.Cluster_ORIGINAL_DST
}

// hostPort adds the default port to a Host without one.
func hostPort(host, defPort string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), defPort)
}

// passthrough sends a plain HTTP request straight to its own Host: one
// try, no mTLS (ALLOW_ANY).
func (h *Handler) passthrough(w http.ResponseWriter, r *http.Request) {
	addr := hostPort(r.Host, "80")
	_, port, _ := net.SplitHostPort(addr)
	h.fwd.Forward(w, r, &lb.Endpoint{Addr: addr, TargetPort: port, ConnectTimeout: mesh.DefaultConnectTimeout}, mesh.ClusterPassthrough)
}

// connect serves CONNECT host:port: to the egress gateway for an egress
// virtual host, directly for the passthrough, 405 otherwise.
func (h *Handler) connect(w http.ResponseWriter, r *http.Request, rq *telemetry.Request, tbl *router.Table, routes *router.Routes) {
	if _, _, err := net.SplitHostPort(r.Host); err != nil {
		proxy.Error(w, http.StatusBadRequest, "CONNECT target %q is not host:port", r.Host)
		return
	}
	vh := routes.VirtualHost(r.Host)
	if vh == nil {
		h.notInRegistry(w, r.Host)
		return
	}
	rt := vh.Route(r)
	if rt == nil {
		proxy.Error(w, http.StatusNotFound, "no route for CONNECT %s", r.Host)
		return
	}
	switch {
	case originalDst(tbl, rt.ClusterName):
		rq.Note(rt.Name, rt.ClusterName, nil, "")
		d := net.Dialer{Timeout: mesh.DefaultConnectTimeout}
		c, err := d.DialContext(r.Context(), "tcp", r.Host)
		if err != nil {
			proxy.Error(w, http.StatusBadGateway, "CONNECT %s: %v", r.Host, err)
			return
		}
		rq.NoteTunnel(nil, &lb.Endpoint{Addr: r.Host})
		h.splice(w, r, c, c, rq)
	case strings.HasPrefix(vh.Name, mesh.VirtualHostEgressPrefix):
		h.connectGateway(w, r, rt, rq)
	default:
		proxy.Error(w, http.StatusMethodNotAllowed, "CONNECT is only for external hosts; send plain HTTP requests to mesh services")
	}
}

// connectGateway opens an HTTP/2 CONNECT stream to a gateway replica over
// the mTLS tunnel; a replica that cannot be reached is replaced by another
// (up to the route's num_retries more), then the bytes are spliced.
func (h *Handler) connectGateway(w http.ResponseWriter, r *http.Request, rt *router.Route, rq *telemetry.Request) {
	name, cl := rt.PickCluster()
	rq.Note(rt.Name, name, nil, "")
	if cl == nil {
		proxy.Error(w, http.StatusServiceUnavailable, "cluster %s not found", name)
		return
	}
	var tried [4]*lb.Endpoint
	pc := lb.Context{Tried: tried[:0]}
	var lastErr error
	for try := 0; try <= rt.Retry.NumRetries; try++ {
		ep := cl.Picker.PickFor(&pc)
		if ep == nil {
			break
		}
		pc.Tried = append(pc.Tried, ep)
		pr, pw := io.Pipe()
		req := (&http.Request{
			Method: http.MethodConnect, URL: &url.URL{}, Host: r.Host,
			Header: http.Header{}, Body: pr, ContentLength: -1,
			Proto: "HTTP/2.0", ProtoMajor: 2,
		}).WithContext(r.Context())
		rq.NoteTunnel(req, ep)
		ep.State.Begin()
		start := time.Now()
		resp, err := h.fwd.Send(req, ep)
		ep.State.End(time.Since(start), time.Now().UnixNano())
		if err != nil {
			_ = pw.Close()
			lastErr = err
			if r.Context().Err() != nil {
				return
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			_ = pw.Close()
			defer func() { _ = resp.Body.Close() }()
			h.fwd.WriteResponse(w, r, resp, ep, name)
			return
		}
		h.splice(w, r, resp.Body, pw, rq)
		return
	}
	if lastErr == nil {
		overloaded(w, mesh.OverloadNoHealthy, "no healthy endpoints for %s", name)
		return
	}
	proxy.Error(w, http.StatusBadGateway, "CONNECT %s: egress gateway unreachable: %v", r.Host, lastErr)
}

// splice answers the app 200 and copies bytes both ways until either side
// ends: from (upstream) to the app, and the app to to. It owns one
// goroutine (the app->upstream copy) and waits for it. The stream is
// counted opened in the TCP metrics and its bytes as they move (rq's
// Finish counts it closed): app->upstream through a counting writer that
// keeps to's ReadFrom (the kernel splice between two sockets),
// upstream->app in the copy loop; neither adds a copy.
func (h *Handler) splice(w http.ResponseWriter, r *http.Request, from io.ReadCloser, to io.WriteCloser, rq *telemetry.Request) {
	defer func() { _ = from.Close() }()
	var (
		appR  io.Reader
		appW  io.Writer
		flush = func() {}
		done  func()
	)
	if r.ProtoMajor == 1 {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			_ = to.Close()
			proxy.Error(w, http.StatusInternalServerError, "CONNECT: %v", err)
			return
		}
		defer func() { _ = conn.Close() }()
		if _, err := brw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n"); err != nil || brw.Flush() != nil {
			_ = to.Close()
			return
		}
		appR, appW = io.MultiReader(bufferedPart(brw.Reader), conn), conn
		// The upstream finished: closing the app's connection also ends
		// the app->upstream copy.
		done = func() { _ = conn.Close() }
	} else {
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		if err := rc.Flush(); err != nil {
			_ = to.Close()
			return
		}
		appR, appW = r.Body, w
		flush = func() { _ = rc.Flush() }
		done = func() {}
	}
	stream := rq.OpenTCP()
	up := make(chan struct{})
	go func() {
		defer close(up)
		buf := make([]byte, 32<<10)
		_, _ = io.CopyBuffer(stream.CountReceived(to), appR, buf)
		_ = to.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			m, werr := appW.Write(buf[:n])
			stream.AddSent(m)
			if werr != nil {
				break
			}
			flush()
		}
		if err != nil {
			break
		}
	}
	done()
	_ = from.Close()
	select {
	case <-up:
	case <-r.Context().Done():
	}
}

// bufferedPart returns what the server already read past the CONNECT
// request head.
func bufferedPart(br *bufio.Reader) io.Reader {
	n := br.Buffered()
	if n == 0 {
		return strings.NewReader("")
	}
	b, _ := br.Peek(n)
	return strings.NewReader(string(b))
}
