package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestHandlerSizes(t *testing.T) {
	srv := httptest.NewServer(handler())
	defer srv.Close()
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/", smallSize},
		{"/1k", smallSize},
		{"/64k", largeSize},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || len(b) != tc.want {
				t.Fatalf("GET %s: status %d, %d bytes; want 200, %d bytes", tc.path, resp.StatusCode, len(b), tc.want)
			}
		})
	}
}

// TestH2CAndGRPC: the upstream speaks h2c and answers the gRPC health
// check the harness's gRPC load sends.
func TestH2CAndGRPC(t *testing.T) {
	h, gs := withGRPC(handler())
	defer gs.Stop()
	srv := httptest.NewUnstartedServer(h)
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = p
	srv.Start()
	defer srv.Close()

	cp := new(http.Protocols)
	cp.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: cp}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/1k", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || len(b) != smallSize {
		t.Errorf("h2c GET /1k: %s, %d bytes; want HTTP/2.0, %d bytes", resp.Proto, len(b), smallSize)
	}

	conn, err := grpc.NewClient(strings.TrimPrefix(srv.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v, want SERVING", hr.GetStatus())
	}
}
