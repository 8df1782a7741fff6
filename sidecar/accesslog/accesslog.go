package accesslog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/xdsproto"
	accesslogv3 "github.com/weftmesh/weft/api/xdsproto/envoy/config/accesslog/v3"
	stream "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/access_loggers/stream/v3"
	hcm "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/weftmesh/weft/api/xdsproto/envoy/type/v3"
)

// Config says which requests are logged; the zero value logs none.
type Config struct {
	Enabled bool
	// Rate in [0,1] of the requests that pass MinStatus.
	Rate float64
	// MinStatus: only responses with at least this status (0: all).
	MinStatus int
}

// Parse reads the access_log of the HttpConnectionManagers (the first one
// with an access log decides; they all carry the same).
func Parse(ms []*hcm.HttpConnectionManager) (Config, error) {
	for _, m := range ms {
		// The first access log of the first manager that has one applies.
		if als := m.GetAccessLog(); len(als) > 0 {
			c, err := parseOne(als[0])
			if err != nil {
				return Config{}, fmt.Errorf("accesslog: access_log 0 (%q): %w", als[0].GetName(), err)
			}
			return c, nil
		}
	}
	return Config{}, nil
}

func parseOne(al *accesslogv3.AccessLog) (Config, error) {
	if al.GetName() != mesh.AccessLoggerStdout {
		return Config{}, fmt.Errorf("logger %q is not supported (%s)", al.GetName(), mesh.AccessLoggerStdout)
	}
	sl := &stream.StdoutAccessLog{}
	if err := xdsproto.UnmarshalAny(al.GetTypedConfig(), sl); err != nil {
		return Config{}, err
	}
	if sl.GetLogFormat().GetJsonFormat() == nil {
		return Config{}, errors.New("log_format: json_format is required")
	}
	c := Config{Enabled: true, Rate: 1}
	if err := c.filter(al.GetFilter(), true); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) filter(f *accesslogv3.AccessLogFilter, top bool) error {
	if f == nil {
		return nil
	}
	switch s := f.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_RuntimeFilter:
		p := s.RuntimeFilter.GetPercentSampled()
		d := 100.0
		switch p.GetDenominator() {
		case typev3.FractionalPercent_TEN_THOUSAND:
			d = 1e4
		case typev3.FractionalPercent_MILLION:
			d = 1e6
		}
		c.Rate = min(float64(p.GetNumerator())/d, 1)
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		cmp := s.StatusCodeFilter.GetComparison()
		if cmp.GetOp() != accesslogv3.ComparisonFilter_GE {
			return fmt.Errorf("status_code_filter: op %s is not supported (GE)", cmp.GetOp())
		}
		c.MinStatus = int(cmp.GetValue().GetDefaultValue())
	case *accesslogv3.AccessLogFilter_AndFilter:
		if !top {
			return errors.New("filter: nested and_filter is not supported")
		}
		for _, sub := range s.AndFilter.GetFilters() {
			if err := c.filter(sub, false); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("filter: %T is not supported (runtime_filter, status_code_filter, and_filter)", s)
	}
	return nil
}

// Entry is one access log line. Every key is always present (empty
// strings and zeros included), so each line has the same schema.
type Entry struct {
	Time                time.Time `json:"time"`
	Direction           string    `json:"direction"`
	TraceID             string    `json:"trace_id"`
	SpanID              string    `json:"span_id"`
	Method              string    `json:"method"`
	Authority           string    `json:"authority"`
	Path                string    `json:"path"`
	Protocol            string    `json:"protocol"`
	Status              int       `json:"status"`
	Flags               string    `json:"flags"`
	Route               string    `json:"route"`
	Cluster             string    `json:"cluster"`
	Upstream            string    `json:"upstream"`
	Attempts            int       `json:"attempts"`
	SourceIdentity      string    `json:"source_identity"`
	DestinationIdentity string    `json:"destination_identity"`
	SourceWorkload      string    `json:"source_workload"`
	DestinationWorkload string    `json:"destination_workload"`
	BytesReceived       int64     `json:"bytes_received"`
	BytesSent           int64     `json:"bytes_sent"`
	DurationMS          float64   `json:"duration_ms"`
	UpstreamDurationMS  float64   `json:"upstream_duration_ms"`
}

// Logger writes entries as JSON lines.
type Logger struct {
	cfg atomic.Pointer[Config]
	mu  sync.Mutex
	w   io.Writer
	enc *json.Encoder
}

// New returns a Logger writing to w, off until Apply.
func New(w io.Writer) *Logger {
	l := &Logger{w: w, enc: json.NewEncoder(w)}
	l.cfg.Store(&Config{})
	return l
}

// Apply installs c.
func (l *Logger) Apply(c Config) { l.cfg.Store(&c) }

// Wants reports whether a request with this status is to be logged
// (the filters and the sampling draw).
func (l *Logger) Wants(status int) bool {
	c := l.cfg.Load()
	if !c.Enabled || status < c.MinStatus {
		return false
	}
	return c.Rate >= 1 || rand.Float64() < c.Rate //nolint:gosec // G404: sampling, not security.
}

// Enabled reports whether any request may be logged.
func (l *Logger) Enabled() bool { return l.cfg.Load().Enabled }

// Log writes e as one line.
func (l *Logger) Log(e *Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.enc.Encode(e)
}
