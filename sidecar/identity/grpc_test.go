package identity

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	cav1 "github.com/weftmesh/weft/api/ca/v1"

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
	cav1.RegisterCertificateServiceServer(g, svc)
	go func() { _ = g.Serve(lis) }()
	return g, lis.Addr().String()
}

// TestGRPCCADownAndBack: the Manager renews through the real gRPC client;
// the CA's server stops (the control plane is down), the Manager keeps its
// certificate and retries; the server comes back on the same address and
// renewal succeeds on the same connection object, with no restart.
func TestGRPCCADownAndBack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := testca.New(t, "root", 2*time.Second) // token "wjt_test"
	g, addr := serveCA(t, "127.0.0.1:0", svc)
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 300 * time.Millisecond}, MinConnectTimeout: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	t.Run("wrong token", func(t *testing.T) {
		m, err := New(paymentID, WithLogger(discard()))
		if err != nil {
			t.Fatal(err)
		}
		err = m.renew(ctx, NewGRPCCA(conn, StaticToken("wjt_other")))
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("renew with a wrong token: %v", err)
		}
	})

	m, err := New(paymentID, WithLogger(discard()), WithBackoff(50*time.Millisecond, 300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, ctx, m, NewGRPCCA(conn, StaticToken("wjt_test")))
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
