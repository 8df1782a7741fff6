package gateway

import (
	"bytes"
	"crypto/tls"
	"net"
	"testing"
	"time"
)

func TestPeekSNI(t *testing.T) {
	for _, name := range []string{"api.example.test", ""} {
		t.Run("sni="+name, func(t *testing.T) {
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			go func() {
				cl := tls.Client(c1, &tls.Config{ServerName: name, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // G402: only the ClientHello is read.
				_ = cl.SetDeadline(time.Now().Add(2 * time.Second))
				_ = cl.Handshake()
			}()
			_ = c2.SetDeadline(time.Now().Add(2 * time.Second))
			got, prefix, err := peekSNI(c2)
			if err != nil {
				t.Fatal(err)
			}
			if got != name {
				t.Errorf("SNI = %q, want %q", got, name)
			}
			if len(prefix) < 5 || prefix[0] != 0x16 {
				t.Errorf("replayed prefix %x is not a TLS record", prefix[:min(len(prefix), 8)])
			}
		})
	}
	if _, _, err := peekSNI(bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n"))); err == nil {
		t.Error("plaintext accepted as a ClientHello")
	}
}
