package sidecar

import (
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/gateway"
	"github.com/weftmesh/weft/sidecar/router"
)

// newGateway is the inbound handler of --mode=egress-gateway: its access
// log goes where the sidecar's goes (stdout by default), its counter to
// the sidecar's metrics.
func newGateway(cfg Config, log *slog.Logger, tables *atomic.Pointer[router.Table], reg prometheus.Registerer, tcp *metrics.TCP) http.Handler {
	out := cfg.AccessLogOutput
	if out == nil {
		out = os.Stdout
	}
	self := selfOf(cfg)
	opts := append([]gateway.Option{
		gateway.WithRegisterer(reg), gateway.WithAccessLog(out),
		gateway.WithTCPMetrics(tcp, self.Workload, self.Namespace, self.Identity),
	}, cfg.GatewayOptions...)
	return gateway.NewHandler(tables, log, opts...)
}
