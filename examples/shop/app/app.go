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
	Fault Fault
	// Faults, when set, is the fault control the handler follows instead
	// of Fault (Run makes one from Fault, so FaultAdmin can change it).
	Faults *FaultControl
	// FaultAdmin, when set, is the loopback address Run serves the
	// run-time fault control API on (FaultControl.AdminHandler).
	FaultAdmin string
	Logger     *slog.Logger
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
	fc := cfg.Faults
	if fc == nil {
		if err := cfg.Fault.Validate(); err != nil {
			return nil, err
		}
		fc = NewFaultControl(cfg.Fault)
	}
	return fc.Wrap(mux), nil
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
	if err := cfg.Fault.Validate(); err != nil {
		return err
	}
	if cfg.Faults == nil {
		cfg.Faults = NewFaultControl(cfg.Fault)
	}
	h, err := Handler(cfg, client)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	servers := []*http.Server{}
	listeners := []net.Listener{}
	if cfg.FaultAdmin != "" {
		if err := checkLoopback(cfg.FaultAdmin); err != nil {
			return err
		}
		aln, err := lc.Listen(ctx, "tcp", cfg.FaultAdmin)
		if err != nil {
			return fmt.Errorf("shop: fault admin: %w", err)
		}
		servers = append(servers, newServer(ctx, cfg.Faults.AdminHandler()))
		listeners = append(listeners, aln)
		cfg.Logger.Info("fault admin API", "listen", aln.Addr().String())
	}
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		for _, l := range listeners {
			_ = l.Close()
		}
		return fmt.Errorf("shop: %w", err)
	}
	servers = append(servers, newServer(ctx, h))
	listeners = append(listeners, cfg.Faults.Listener(ln))
	cfg.Logger.Info("serving", "role", cfg.Role, "instance", cfg.Instance, "listen", ln.Addr().String(), "proxy", cfg.Proxy)
	// One goroutine per server, owned here: each ends when its server is
	// shut down (or fails, which ends Run).
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	pending := len(servers)
	select {
	case err = <-errc:
		pending--
		err = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		err = errors.Join(err, srv.Shutdown(shutCtx))
	}
	for range pending {
		if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	cfg.Logger.Info("stopped", "role", cfg.Role)
	if err != nil {
		return fmt.Errorf("shop: %w", err)
	}
	return nil
}

func newServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}
