package probe

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one probe when the kubelet's request has no
// deadline of its own.
const DefaultTimeout = 10 * time.Second

// Probe is one original HTTP probe (corev1.HTTPGetAction, port resolved).
type Probe struct {
	Port        int      `json:"port"`
	Path        string   `json:"path"`
	Scheme      string   `json:"scheme"`
	Host        string   `json:"host"`
	HTTPHeaders []Header `json:"httpHeaders"`
}

// Header is one probe header.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Handler serves the rewritten probe paths.
type Handler struct {
	probes map[string]Probe
	client *http.Client
	log    *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// New parses the mesh.EnvAppProbes JSON.
func New(js string, opts ...Option) (*Handler, error) {
	h := &Handler{probes: map[string]Probe{}, log: slog.Default()}
	if err := json.Unmarshal([]byte(js), &h.probes); err != nil {
		return nil, fmt.Errorf("probe: app probes: %w", err)
	}
	for path, p := range h.probes {
		if p.Port <= 0 || p.Port > 65535 {
			return nil, fmt.Errorf("probe: app probe %s: port %d is not 1..65535", path, p.Port)
		}
		switch strings.ToUpper(p.Scheme) {
		case "", "HTTP", "HTTPS":
		default:
			return nil, fmt.Errorf("probe: app probe %s: scheme %q is not HTTP or HTTPS", path, p.Scheme)
		}
	}
	for _, o := range opts {
		o(h)
	}
	h.client = &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			// The kubelet does not verify probe certificates either.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet semantics: probes skip verification
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := h.probes[r.URL.Path]
	if !ok {
		http.Error(w, "weft: no app probe "+r.URL.Path, http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), DefaultTimeout)
	defer cancel()
	scheme := "http"
	if strings.EqualFold(p.Scheme, "HTTPS") {
		scheme = "https"
	}
	host := p.Host
	if host == "" {
		host = "127.0.0.1"
	}
	path := p.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(p.Port)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		http.Error(w, "weft: bad app probe: "+err.Error(), http.StatusInternalServerError)
		return
	}
	for _, hd := range p.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	req.Header.Set("User-Agent", "weft-probe/1")
	resp, err := h.client.Do(req)
	if err != nil {
		h.log.Debug("app probe failed", "path", r.URL.Path, "url", url, "error", err)
		http.Error(w, "weft: app probe failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 10<<10))
}
