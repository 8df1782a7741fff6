package identity

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/api/ca/v1/cav1grpc"

	"github.com/weftmesh/weft/sidecar/internal/cpconn"
	"github.com/weftmesh/weft/sidecar/internal/testca"
)

// serveCA serves the CA service on addr ("127.0.0.1:0" for a new port).
func serveCA(t *testing.T, addr string, svc *testca.CA) (*grpc.Server, string) {
	t.Helper()
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	cav1grpc.RegisterCertificateServiceServer(g, svc)
	go func() { _ = g.Serve(lis) }()
	return g, lis.Addr().String()
}

// TestGRPCCADownAndBack: the Manager renews through the real client
// (connect's gRPC protocol on cpconn's HTTP/2 transport) against grpc-go's
// server, the control plane's; the CA's server stops (the control plane is
// down), the Manager keeps its certificate and retries; the server comes
// back on the same address and renewal succeeds on the same client, with
// no restart.
func TestGRPCCADownAndBack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := testca.New(t, "root", 2*time.Second) // token "wjt_test"
	g, addr := serveCA(t, "127.0.0.1:0", svc)
	tr := cpconn.NewTransport(nil)
	defer tr.CloseIdleConnections()
	hc, base := &http.Client{Transport: tr}, cpconn.BaseURL(addr, false)

	t.Run("wrong token", func(t *testing.T) {
		m, err := New(paymentID, WithLogger(discard()))
		if err != nil {
			t.Fatal(err)
		}
		err = m.renew(ctx, NewGRPCCA(hc, base, StaticToken("wjt_other")))
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("renew with a wrong token: %v", err)
		}
	})

	m, err := New(paymentID, WithLogger(discard()), WithBackoff(50*time.Millisecond, 300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, ctx, m, NewGRPCCA(hc, base, StaticToken("wjt_test")))
	first := m.Status()
	g.Stop()
	eventually(t, 10*time.Second, "failed renewals while the CA is down", func() bool { return m.Status().Failures >= 3 })
	if st := m.Status(); st.Serial != first.Serial {
		t.Fatalf("serial changed while the CA was down")
	}
	g2, _ := serveCA(t, addr, svc)
	defer g2.Stop()
	eventually(t, 10*time.Second, "renewal once the CA is back", func() bool {
		_, err := m.GetX509SVID()
		return err == nil && m.Status().Serial != first.Serial
	})
}
