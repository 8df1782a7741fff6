package inbound

import (
	"io"
	"net"
	"net/http"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/proxy"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// connectApp serves a CONNECT stream from a peer sidecar (raw TCP the peer
// captured; authorization already passed): it dials the app endpoint and
// copies bytes both ways until either side ends. It owns one goroutine
// (peer -> app) and waits for it. The stream's bytes are counted as they
// move, without a copy (metrics.TCPSeries.CountReceived, the read loop).
func (h *Handler) connectApp(w http.ResponseWriter, r *http.Request, ep *lb.Endpoint, rq *telemetry.Request) {
	d := net.Dialer{Timeout: mesh.DefaultConnectTimeout}
	c, err := d.DialContext(r.Context(), "tcp", ep.Addr)
	if err != nil {
		proxy.Error(w, http.StatusBadGateway, "TCP to the app at %s: %v", ep.Addr, err)
		return
	}
	defer func() { _ = c.Close() }()
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex()
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	stream := rq.OpenTCP()
	up := make(chan struct{})
	go func() {
		defer close(up)
		_, _ = io.Copy(stream.CountReceived(c), r.Body)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			stream.AddSent(m)
			if werr != nil {
				break
			}
			_ = rc.Flush()
		}
		if err != nil {
			break
		}
	}
	_ = c.Close()
	select {
	case <-up:
	case <-r.Context().Done():
	}
}
