package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Roles.
const (
	RoleAPIGateway = "api-gateway"
	RoleOrder      = "order"
	RolePayment    = "payment"
	RoleInventory  = "inventory"
)

// Paths each role serves.
const (
	PathCheckout = "/checkout"
	PathOrder    = "/order"
	PathPay      = "/pay"
	PathReserve  = "/reserve"
)

// Default upstream URLs: one per name form the mesh routes.
const (
	DefaultOrderURL     = "http://order.shop.svc.cluster.local:8080" + PathOrder
	DefaultPaymentURL   = "http://payment:8080" + PathPay
	DefaultInventoryURL = "http://inventory.shop:8080" + PathReserve
)

// traceHeaders are copied from an inbound request to its outbound calls.
var traceHeaders = [...]string{
	"traceparent", "tracestate", "baggage",
	"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
	"x-request-id",
}

// Config is what one shop process is.
type Config struct {
	Role     string
	Listen   string // host:port
	Proxy    string // the sidecar's outbound listener, http://<ip>:15001; empty: direct
	Instance string // reported in every Reply
	// Upstreams, used by api-gateway (Order) and order (Payment, Inventory).
	OrderURL, PaymentURL, InventoryURL string
	// Timeout bounds each outbound call.
	Timeout time.Duration
	// Fault injects failures (tests); the zero value injects none.
	Fault  Fault
	Logger *slog.Logger
}

// Reply is every role's answer.
type Reply struct {
	Service  string `json:"service"`
	Instance string `json:"instance"`
	// Trace holds the trace headers the request arrived with.
	Trace map[string]string `json:"trace,omitempty"`
	Calls []Call            `json:"calls,omitempty"`
}

// Call is one outbound call a role made while serving.
type Call struct {
	Service   string  `json:"service"`
	URL       string  `json:"url"`
	Status    int     `json:"status,omitempty"`
	Error     string  `json:"error,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
	Reply     *Reply  `json:"reply,omitempty"`
}

type upstream struct{ service, url string }

type server struct {
	cfg       Config
	client    *http.Client
	upstreams []upstream
}

// Handler returns the role's HTTP handler; the client carries its calls.
func Handler(cfg Config, client *http.Client) (http.Handler, error) {
	s := &server{cfg: cfg, client: client}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	var path string
	switch cfg.Role {
	case RoleAPIGateway:
		path = PathCheckout
		s.upstreams = []upstream{{RoleOrder, cfg.OrderURL}}
	case RoleOrder:
		path = PathOrder
		s.upstreams = []upstream{{RolePayment, cfg.PaymentURL}, {RoleInventory, cfg.InventoryURL}}
	case RolePayment:
		path = PathPay
	case RoleInventory:
		path = PathReserve
	default:
		return nil, fmt.Errorf("shop: unknown role %q (api-gateway, order, payment or inventory)", cfg.Role)
	}
	for _, u := range s.upstreams {
		if _, err := url.Parse(u.url); err != nil || u.url == "" {
			return nil, fmt.Errorf("shop: %s url %q: %w", u.service, u.url, err)
		}
	}
	mux.HandleFunc("GET "+path, s.serve)
	mux.HandleFunc("GET /{$}", s.serve)
	if err := cfg.Fault.Validate(); err != nil {
		return nil, err
	}
	return cfg.Fault.wrap(mux), nil
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	reply := Reply{Service: s.cfg.Role, Instance: s.cfg.Instance}
	trace := http.Header{}
	for _, h := range traceHeaders {
		if v := r.Header.Get(h); v != "" {
			trace.Set(h, v)
			if reply.Trace == nil {
				reply.Trace = map[string]string{}
			}
			reply.Trace[h] = v
		}
	}
	status := http.StatusOK
	for _, u := range s.upstreams {
		c := s.call(r.Context(), u, trace)
		if c.Error != "" {
			status = http.StatusBadGateway
		}
		reply.Calls = append(reply.Calls, c)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(reply)
}

func (s *server) call(ctx context.Context, u upstream, trace http.Header) (c Call) {
	c = Call{Service: u.service, URL: u.url}
	start := time.Now()
	defer func() { c.LatencyMS = float64(time.Since(start).Microseconds()) / 1000 }()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.url, nil)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	for h, v := range trace {
		req.Header[h] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	defer func() { _ = resp.Body.Close() }()
	c.Status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		c.Error = "read body: " + err.Error()
		return c
	}
	var rep Reply
	if err := json.Unmarshal(body, &rep); err == nil && rep.Service != "" {
		c.Reply = &rep
	}
	if resp.StatusCode != http.StatusOK {
		c.Error = fmt.Sprintf("status %d: %.200s", resp.StatusCode, body)
	}
	return c
}

// NewClient is a keep-alive HTTP client that sends every request through
// proxy (when not empty) and bounds each call by timeout.
func NewClient(proxy string, timeout time.Duration) (*http.Client, error) {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     false,
	}
	if proxy != "" {
		u, err := url.Parse(proxy)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("shop: --proxy %q is not a URL like http://127.0.0.10:15001", proxy)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// Run serves cfg.Role on cfg.Listen until ctx ends, then shuts down
// gracefully (in-flight requests get up to 5 s).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	client, err := NewClient(cfg.Proxy, cfg.Timeout)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	h, err := Handler(cfg, client)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("shop: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	cfg.Logger.Info("serving", "role", cfg.Role, "instance", cfg.Instance, "listen", ln.Addr().String(), "proxy", cfg.Proxy)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("shop: serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	cfg.Logger.Info("stopped", "role", cfg.Role)
	if err != nil {
		return fmt.Errorf("shop: shutdown: %w", err)
	}
	return nil
}
