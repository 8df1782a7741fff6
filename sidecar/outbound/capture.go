package outbound

import (
	"net/http"
	"strings"

	"github.com/weftmesh/weft/sidecar/capture"
	"github.com/weftmesh/weft/sidecar/proxy"
	"github.com/weftmesh/weft/sidecar/router"
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
	// Rare path (a pod IP instead of a service): scan the outbound clusters.
	for name, cl := range tbl.Clusters {
		if !strings.HasPrefix(name, "outbound|") || cl.Picker == nil {
			continue
		}
		for _, ep := range cl.Picker.Endpoints() {
			if ep.Addr == addr {
				proxy.RemoveMeshHeaders(r.Header)
				h.fwd.Forward(w, r, ep, name)
				return nil, true
			}
		}
	}
	return nil, false
}
