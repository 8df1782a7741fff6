package ca

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJoinTokens(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	j := NewJoinTokens(clock)
	cart := Identity{Namespace: "shop", ServiceAccount: "cart", Workload: "cart-1"}
	tokA, err := j.Mint(paymentID, 0)
	if err != nil {
		t.Fatal(err)
	}
	tokB, err := j.Mint(cart, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokA) < 40 || tokA == tokB {
		t.Fatalf("tokens %q %q are not distinct 256-bit values", tokA, tokB)
	}
	for _, tc := range []struct {
		name string
		tok  string
		want Identity
	}{{"token A proves A", tokA, paymentID}, {"token B proves B", tokB, cart}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := j.Authenticate(ctx, tc.tok)
			if err != nil || got != tc.want {
				t.Fatalf("Authenticate = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}

	refused := []struct {
		name string
		tok  func() string
	}{
		{"empty", func() string { return "" }},
		{"not a join token", func() string { return "eyJhbGciOi.x.y" }},
		{"unknown", func() string { return joinTokenPrefix + strings.Repeat("A", 43) }},
		{"one character changed", func() string { return tokA[:len(tokA)-1] + string(tokA[len(tokA)-1]^1) }},
		{"revoked", func() string {
			tok, _ := j.Mint(Identity{Namespace: "shop", ServiceAccount: "x", Workload: "x-1"}, 0)
			j.Revoke("shop", "x-1")
			return tok
		}},
		{"replaced by a new mint", func() string {
			tok, _ := j.Mint(Identity{Namespace: "shop", ServiceAccount: "y", Workload: "y-1"}, 0)
			if _, err := j.Mint(Identity{Namespace: "shop", ServiceAccount: "y", Workload: "y-1"}, 0); err != nil {
				t.Fatal(err)
			}
			return tok
		}},
		{"expired", func() string {
			tok, _ := j.Mint(Identity{Namespace: "shop", ServiceAccount: "z", Workload: "z-1"}, time.Minute)
			now = now.Add(2 * time.Minute)
			return tok
		}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.tok()
			_, err := j.Authenticate(ctx, tok)
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Authenticate err = %v, want ErrUnauthenticated", err)
			}
			if tok != "" && strings.Contains(err.Error(), tok) {
				t.Fatal("error message contains the token")
			}
		})
	}

	if _, err := j.Mint(Identity{Namespace: "shop", ServiceAccount: "a/b", Workload: "w"}, 0); err == nil {
		t.Error("Mint accepted a service account that is not a SPIFFE path segment")
	}
	if _, err := j.Mint(Identity{Namespace: "shop", ServiceAccount: "a"}, 0); err == nil {
		t.Error("Mint accepted an identity without a workload")
	}
}

func TestJoinTokensFile(t *testing.T) {
	ctx := context.Background()
	j := NewJoinTokens(nil)
	tok, err := j.Mint(paymentID, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens", "join-tokens.json")
	if err := j.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), tok) || strings.Contains(string(b), tok[len(joinTokenPrefix):]) {
		t.Fatal("token file holds the token itself")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	k, err := ReadJoinTokensFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Authenticate(ctx, tok); err != nil || got != paymentID {
		t.Fatalf("Authenticate after reload = %+v, %v", got, err)
	}
	if err := os.WriteFile(path, []byte(`{"version":1,"tokens":[{"sha256":"zz"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJoinTokensFile(path, nil); err == nil {
		t.Fatal("ReadJoinTokensFile accepted a bad hash")
	}
}
