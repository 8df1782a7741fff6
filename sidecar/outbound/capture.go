package outbound

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/capture"
	authzfilter "github.com/weftmesh/weft/sidecar/filter/authz"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/proxy"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// byOriginalDst resolves a captured request (iptables, pod mode) whose Host
// no virtual host matched, by the connection's original destination: first
// as a virtual host domain (<clusterIP>:<port>), then as one mesh
// endpoint's own address (an app dialling a peer pod IP directly), which it
// forwards to itself, pinned to that endpoint, over the tunnel. It returns
// the virtual host to route with, or done when it answered.
func (h *Handler) byOriginalDst(w http.ResponseWriter, r *http.Request, tbl *router.Table, routes *router.Routes) (_ *router.VirtualHost, done bool) {
	dst, ok := capture.FromContext(r.Context())
	if !ok {
		return nil, false
	}
	addr := dst.String()
	if vh := routes.VirtualHost(addr); vh != nil {
		return vh, false
	}
	if ep, name := endpointByAddr(tbl, addr); ep != nil {
		proxy.RemoveMeshHeaders(r.Header)
		h.fwd.Forward(w, r, ep, name)
		return nil, true
	}
	return nil, false
}

// endpointByAddr finds the mesh endpoint whose own address is addr (a rare
// path: a pod IP instead of a service, so a scan of the outbound clusters).
func endpointByAddr(tbl *router.Table, addr string) (*lb.Endpoint, string) {
	for name, cl := range tbl.Clusters {
		if !strings.HasPrefix(name, "outbound|") || cl.Picker == nil {
			continue
		}
		for _, ep := range cl.Picker.Endpoints() {
			if ep.Addr == addr {
				return ep, name
			}
		}
	}
	return nil, ""
}

// rawTCP carries a captured non-HTTP connection (capture.SniffConn made it
// a CONNECT to its original destination): egress authorization by the
// destination, then to a service's endpoint (by ClusterIP:port) or a mesh
// endpoint (by pod IP:port) over an HTTP/2 CONNECT stream on the mTLS
// tunnel, whose peer inbound dials its app; anything else is dialled
// directly. A refusal resets the app's connection (capture.SniffConn).
func (h *Handler) rawTCP(w http.ResponseWriter, r *http.Request, rq *telemetry.Request, tbl *router.Table, routes *router.Routes) {
	dst := r.Host
	if r.URL.Path == "" {
		r.URL.Path = "/"
	}
	if tbl.Snapshot != nil && !h.authz.Outbound(w, r, authzfilter.ChainEngine(tbl.Snapshot.Listeners[mesh.ListenerOutbound], 0)) {
		return
	}
	var (
		ep        *lb.Endpoint
		name      string
		routeName string
	)
	if vh := routes.VirtualHost(dst); vh != nil {
		rt := vh.Route(r)
		if rt == nil {
			proxy.Error(w, http.StatusNotFound, "no route for TCP %s", dst)
			return
		}
		routeName = rt.Name
		var cl *router.Cluster
		name, cl = rt.PickCluster()
		if !originalDst(tbl, name) {
			if cl == nil {
				proxy.Error(w, http.StatusServiceUnavailable, "cluster %s not found", name)
				return
			}
			if ep = cl.Picker.PickFor(&lb.Context{}); ep == nil {
				proxy.Error(w, http.StatusServiceUnavailable, "no healthy endpoints for %s", name)
				return
			}
		}
	} else {
		ep, name = endpointByAddr(tbl, dst)
	}
	rq.Note(routeName, name, ep, "")
	if ep == nil || ep.TunnelAddr == "" {
		addr := dst
		if ep != nil {
			addr = ep.Addr
		}
		d := net.Dialer{Timeout: mesh.DefaultConnectTimeout}
		c, err := d.DialContext(r.Context(), "tcp", addr)
		if err != nil {
			proxy.Error(w, http.StatusBadGateway, "TCP %s: %v", addr, err)
			return
		}
		h.splice(w, r, c, c, rq)
		return
	}
	pr, pw := io.Pipe()
	req := (&http.Request{
		Method: http.MethodConnect, URL: &url.URL{}, Host: dst,
		Header: http.Header{}, Body: pr, ContentLength: -1,
		Proto: "HTTP/2.0", ProtoMajor: 2,
	}).WithContext(r.Context())
	rq.NoteTunnel(req, ep)
	resp, err := h.fwd.Send(req, ep)
	if err != nil {
		_ = pw.Close()
		proxy.Error(w, http.StatusBadGateway, "TCP %s via %s: %v", dst, name, err)
		return
	}
	if resp.StatusCode != http.StatusOK {
		_ = pw.Close()
		_ = resp.Body.Close()
		proxy.Error(w, resp.StatusCode, "TCP %s refused by the peer", dst)
		return
	}
	h.splice(w, r, resp.Body, pw, rq)
}
