package admin

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftmesh/weft/sidecar/identity"
)

// Certs gives the sidecar's certificate status (identity.Manager).
type Certs interface {
	Status() identity.Status
}

var _ Certs = (*identity.Manager)(nil)

// CertStatus is the JSON of /certs: the sidecar's own certificate, never
// its key.
type CertStatus struct {
	Identity  string    `json:"identity"`
	Serial    string    `json:"serial,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
	NotAfter  time.Time `json:"notAfter,omitzero"`
	RenewAt   time.Time `json:"renewAt,omitzero"`
	Roots     int       `json:"roots"`
	Failures  uint64    `json:"renewalFailures"`
}

// CertsHandler serves GET /certs (404 without an identity).
func CertsHandler(c Certs, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if c == nil {
			http.Error(w, "weft: this sidecar runs without an identity", http.StatusNotFound)
			return
		}
		st := c.Status()
		writeJSON(w, log, CertStatus{
			Identity: st.ID.String(), Serial: st.Serial, NotBefore: st.NotBefore, NotAfter: st.NotAfter,
			RenewAt: st.RenewAt, Roots: st.Roots, Failures: st.Failures,
		})
	})
}

// Metrics is the sidecar's Prometheus registry (never the global one) and
// the collectors other packages update.
type Metrics struct {
	Registry *prometheus.Registry
	// Renewals counts certificate installs by result (ok, error).
	Renewals *prometheus.CounterVec
}

// NewMetrics registers the sidecar's collectors: certificate expiry (read
// from c at scrape time; c may be nil), renewals, and the xDS connection
// state (read from connected at scrape time).
func NewMetrics(c Certs, connected func() bool) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_cert_renewals_total",
			Help: "Certificate renewals by result (ok, error).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.Renewals)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_xds_connected",
		Help: "1 while the ADS stream to the control plane is open, else 0.",
	}, func() float64 {
		if connected != nil && connected() {
			return 1
		}
		return 0
	}))
	if c != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weft_cert_expiry_timestamp_seconds",
			Help: "NotAfter of the sidecar's current certificate, in Unix seconds (0 before the first).",
		}, func() float64 {
			na := c.Status().NotAfter
			if na.IsZero() {
				return 0
			}
			return float64(na.Unix())
		}))
	}
	m.Renewals.WithLabelValues("ok")
	m.Renewals.WithLabelValues("error")
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
