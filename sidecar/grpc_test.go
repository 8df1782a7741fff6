package sidecar

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/mesh"
)

// dialGRPC returns a gRPC client that sends its calls to the client
// sidecar's outbound listener (h2c) with the payment service as
// :authority, as an app in the mesh does.
func dialGRPC(t testing.TB, e *mtlsEnv) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+e.client.addr(mesh.PortOutbound),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority(svcPayment+":"+strconv.Itoa(paymentPort)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestMTLSPairGRPC: gRPC calls through the sidecar pair (h2c in, HTTP/2
// over mTLS between the sidecars, h2c to the app) keep what gRPC needs of
// HTTP/2: the status in trailers (and in a trailers-only response), and
// server streaming, message by message, and cancellation.
func TestMTLSPairGRPC(t *testing.T) {
	e := newMTLSEnv(t, time.Hour, false)
	hc := healthgrpc.NewHealthClient(dialGRPC(t, e))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	t.Run("unary call, status in trailers", func(t *testing.T) {
		e.app.health.SetServingStatus("payment", healthgrpc.HealthCheckResponse_SERVING)
		var header, trailer metadata.MD
		resp, err := hc.Check(ctx, &healthgrpc.HealthCheckRequest{Service: "payment"}, grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if resp.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
			t.Errorf("status %v, want SERVING", resp.GetStatus())
		}
		if got := header.Get("content-type"); len(got) != 1 || !strings.HasPrefix(got[0], "application/grpc") {
			t.Errorf("response content-type %q", got)
		}
		// grpc-go reads grpc-status from the trailers and hands the
		// others to the caller; the app's health service sends none, so
		// the call's status (OK above) is what proves they arrived.
		_ = trailer
	})

	t.Run("error status from a trailers-only response", func(t *testing.T) {
		_, err := hc.Check(ctx, &healthgrpc.HealthCheckRequest{Service: "no-such-service"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("Check of an unknown service: %v, want NotFound", err)
		}
	})

	t.Run("server streaming, message by message", func(t *testing.T) {
		e.app.health.SetServingStatus("stream", healthgrpc.HealthCheckResponse_SERVING)
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		w, err := hc.Watch(wctx, &healthgrpc.HealthCheckRequest{Service: "stream"})
		if err != nil {
			t.Fatal(err)
		}
		// Each message must arrive while the stream is open: the second
		// is sent only after the first was received.
		for _, want := range []healthgrpc.HealthCheckResponse_ServingStatus{
			healthgrpc.HealthCheckResponse_SERVING, healthgrpc.HealthCheckResponse_NOT_SERVING,
		} {
			m, err := w.Recv()
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			if m.GetStatus() != want {
				t.Fatalf("got %v, want %v", m.GetStatus(), want)
			}
			e.app.health.SetServingStatus("stream", healthgrpc.HealthCheckResponse_NOT_SERVING)
		}
		wcancel()
		if _, err := w.Recv(); status.Code(err) != codes.Canceled {
			t.Errorf("Recv after cancel: %v, want Canceled", err)
		}
	})

	t.Run("bidirectional streaming, ping-pong", func(t *testing.T) {
		// The client sends the next message only after the answer to
		// the previous one: neither sidecar may wait for the end of the
		// request stream (a retry buffer, say) before forwarding it.
		s, err := testgrpc.NewTestServiceClient(dialGRPC(t, e)).FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{"ping 1", "ping 2", "ping 3"} {
			if err := s.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(body)}}); err != nil {
				t.Fatalf("Send %q: %v", body, err)
			}
			m, err := s.Recv()
			if err != nil {
				t.Fatalf("Recv after %q: %v", body, err)
			}
			if got := string(m.GetPayload().GetBody()); got != body {
				t.Fatalf("got %q, want %q", got, body)
			}
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); !errors.Is(err, io.EOF) {
			t.Errorf("Recv after CloseSend: %v, want EOF (status OK)", err)
		}
	})
}
