package transport_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/transport"
)

func TestOwnConnection(t *testing.T) {
	direct := &lb.Endpoint{Addr: "10.0.0.1:8080"}
	h2c := &lb.Endpoint{Addr: "10.0.0.1:8080", TunnelAddr: "10.0.0.1:15006"}
	mtls := &lb.Endpoint{Addr: "10.0.0.1:8080", TunnelAddr: "10.0.0.1:15006", MTLS: &lb.MTLS{Key: "k"}}
	req := func(method string, major int, grpc bool) *http.Request {
		r := httptest.NewRequest(method, "http://payment:8080/", nil)
		r.ProtoMajor = major
		if grpc {
			r.Header.Set("Content-Type", "application/grpc")
		}
		return r
	}
	streamed := func(r *http.Request) *http.Request {
		r.ContentLength = -1
		return r
	}
	trailers := func(r *http.Request) *http.Request {
		r.ContentLength = 4
		r.Trailer = http.Header{"Checksum": nil}
		return r
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		ep   *lb.Endpoint
		own  bool
	}{
		{"direct HTTP/1.1", req(http.MethodGet, 1, false), direct, true},
		{"direct gRPC (h2c, multiplexed)", req(http.MethodPost, 2, true), direct, false},
		{"h2c tunnel", req(http.MethodGet, 1, false), h2c, false},
		{"mTLS, HTTP/1.1 (pooled)", req(http.MethodGet, 1, false), mtls, true},
		{"mTLS, HTTP/2 without a body (pooled HTTP/1.1)", req(http.MethodGet, 2, false), mtls, true},
		{"mTLS, HTTP/2 with a streamed body", streamed(req(http.MethodPost, 2, false)), mtls, false},
		{"mTLS, HTTP/2 with a known length and trailers", trailers(req(http.MethodPost, 2, false)), mtls, false},
		{"mTLS, gRPC over HTTP/1.1 client", req(http.MethodPost, 1, true), mtls, false},
		{"mTLS, CONNECT", req(http.MethodConnect, 1, false), mtls, false},
	} {
		if got := transport.OwnConnection(tc.req, tc.ep); got != tc.own {
			t.Errorf("%s: OwnConnection = %v, want %v", tc.name, got, tc.own)
		}
	}
}

// TestReleasesRequest: the Mesh releases (keeps nothing of, once answered)
// exactly the requests without a body it sends on an HTTP/1.1 pool.
func TestReleasesRequest(t *testing.T) {
	direct := &lb.Endpoint{Addr: "10.0.0.1:8080"}
	tunnel := &lb.Endpoint{Addr: "10.0.0.1:8080", TunnelAddr: "10.0.0.1:15006"}
	mtls := &lb.Endpoint{Addr: "10.0.0.1:8080", TunnelAddr: "10.0.0.1:15006", MTLS: &lb.MTLS{Key: "k"}}
	req := func(method string, major int, grpc bool) *http.Request {
		r := httptest.NewRequest(method, "http://payment:8080/", nil)
		r.ProtoMajor = major
		if grpc {
			r.Header.Set("Content-Type", "application/grpc")
		}
		return r
	}
	withBody := func(r *http.Request) *http.Request {
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader("hi")), 2
		return r
	}
	h2c := transport.New()
	withMTLS := transport.New(transport.WithTunnel(transport.NewMTLS(nil, nil)))
	h2Only := transport.New(transport.WithTunnel(transport.NewMTLS(nil, nil, transport.WithHTTP1Pool(false))))
	for _, tc := range []struct {
		name string
		m    *transport.Mesh
		req  *http.Request
		ep   *lb.Endpoint
		want bool
	}{
		{"direct GET (h1client)", h2c, req(http.MethodGet, 1, false), direct, true},
		{"direct POST with a body", h2c, withBody(req(http.MethodPost, 1, false)), direct, false},
		{"direct gRPC (net/http HTTP/2)", h2c, req(http.MethodPost, 2, true), direct, false},
		{"h2c tunnel", h2c, req(http.MethodGet, 1, false), tunnel, false},
		{"mTLS tunnel, GET (HTTP/1.1 pool)", withMTLS, req(http.MethodGet, 1, false), mtls, true},
		{"mTLS tunnel, HTTP/2 GET (HTTP/1.1 pool)", withMTLS, req(http.MethodGet, 2, false), mtls, true},
		{"mTLS tunnel, POST with a body", withMTLS, withBody(req(http.MethodPost, 1, false)), mtls, false},
		{"mTLS tunnel, CONNECT", withMTLS, req(http.MethodConnect, 1, false), mtls, false},
		{"mTLS tunnel, endpoint without mTLS (h2c)", withMTLS, req(http.MethodGet, 1, false), tunnel, false},
		{"mTLS tunnel without the HTTP/1.1 pool", h2Only, req(http.MethodGet, 1, false), mtls, false},
	} {
		if got := tc.m.ReleasesRequest(tc.req, tc.ep); got != tc.want {
			t.Errorf("%s: ReleasesRequest = %v, want %v", tc.name, got, tc.want)
		}
	}
}
