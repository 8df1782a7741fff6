package h2server

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestTimerClosesAConnectionWhosePeerReadsNothing: the keep-alive PING
// and the idle GOAWAY the timer writes to a peer that reads nothing do
// not hold the timer in the write: the PING timeout, or the idle close,
// still ends the connection (a dead peer kept it until TCP gave up).
func TestTimerClosesAConnectionWhosePeerReadsNothing(t *testing.T) {
	tests := []struct {
		name string
		srv  *Server
	}{
		{name: "PING timeout", srv: &Server{SendPingTimeout: 10 * time.Millisecond, PingTimeout: 50 * time.Millisecond}},
		{name: "idle timeout", srv: &Server{IdleTimeout: 10 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.srv
			s.Handler = http.HandlerFunc(okHandler)
			cli, srv := net.Pipe() // a write blocks until the peer reads
			defer cli.Close()
			served := make(chan struct{})
			go func() {
				s.ServeConn(context.Background(), srv, nil)
				close(served)
			}()
			defer func() { _ = s.Close(); <-served }()
			fr := http2.NewFramer(cli, cli)
			go func() {
				_, _ = io.WriteString(cli, http2.ClientPreface)
				_ = fr.WriteSettings()
			}()
			// The server's SETTINGS and WINDOW_UPDATE, then the ACK of ours;
			// then the client reads no more.
			for acked := false; !acked; {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				sf, ok := f.(*http2.SettingsFrame)
				acked = ok && sf.IsAck()
			}
			select {
			case <-served:
			case <-time.After(waitFor):
				t.Fatal("the connection is still served")
			}
		})
	}
}

// TestPingAfterSendPingTimeout: the keep-alive PING goes once no frame
// came for SendPingTimeout (as net/http's), not after one timer period
// (the shortest of SendPingTimeout, PingTimeout and IdleTimeout: the
// inbound's 30 s SendPingTimeout pinged every 10 s of silence, its
// PingTimeout).
func TestPingAfterSendPingTimeout(t *testing.T) {
	const sendPing = 300 * time.Millisecond
	rc := dialRaw(t, serve(t, &Server{Handler: http.HandlerFunc(okHandler), SendPingTimeout: sendPing, PingTimeout: 50 * time.Millisecond}))
	last := time.Now() // the client's last frame: the SETTINGS ACK in dialRaw
	rc.readUntil("PING", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && !p.IsAck() })
	if waited := time.Since(last); waited < sendPing {
		t.Fatalf("PING %v after the client's last frame, want at least SendPingTimeout (%v)", waited, sendPing)
	}
}
