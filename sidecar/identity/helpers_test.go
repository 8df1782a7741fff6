package identity

import (
	"crypto"
	"crypto/x509"
	"log/slog"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/sidecar/internal/testca"
)

// The identity tests sign with sidecar/internal/testca, the sidecar's
// stand-in for the mesh CA (the control-plane module is not imported).

var (
	td         = spiffeid.RequireTrustDomainFromString("cluster.local")
	paymentID  = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/payment")
	cartID     = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/cart")
	frontendID = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/frontend")
)

// issue signs pub for id with ca, valid from notBefore to notAfter.
func issue(t testing.TB, ca *testca.CA, pub crypto.PublicKey, id string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	leaf, err := ca.Issue(pub, id, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
