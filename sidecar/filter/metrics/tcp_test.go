package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var tcpLV = []string{"outbound", "a", "ns", "spiffe://td/ns/ns/sa/a", "b", "ns", "b.ns.svc.cluster.local", "spiffe://td/ns/ns/sa/b"}

func TestTCPSeriesCached(t *testing.T) {
	tcp := NewTCP(prometheus.NewRegistry())
	s := tcp.Series(tcpLV)
	if s == nil || tcp.Series(append([]string(nil), tcpLV...)) != s {
		t.Fatal("the same labels gave another series")
	}
	s.Opened.Inc()
	s.AddReceived(5)
	s.AddSent(28)
	s.AddSent(0)
	s.Closed.Inc()
	for name, tc := range map[string]struct {
		v    *prometheus.CounterVec
		want float64
	}{"opened": {tcp.Opened, 1}, "closed": {tcp.Closed, 1}, "received": {tcp.Received, 5}, "sent": {tcp.Sent, 28}} {
		if got := testutil.ToFloat64(tc.v.WithLabelValues(tcpLV...)); got != tc.want {
			t.Errorf("%s = %v, want %v", name, got, tc.want)
		}
	}
	var nilTCP *TCP
	var nilSeries *TCPSeries
	if nilTCP.Series(tcpLV) != nil {
		t.Error("nil TCP gave a series")
	}
	nilSeries.AddSent(1) // must not panic
	var buf bytes.Buffer
	if w := nilSeries.CountReceived(&buf); w != io.Writer(&buf) {
		t.Error("nil series wrapped the writer")
	}
	if n := testing.AllocsPerRun(100, func() { tcp.Series(tcpLV).AddSent(10) }); n != 0 {
		t.Errorf("Series+AddSent allocates %v times", n)
	}
}

// socketPair returns both ends of a loopback TCP connection on a random
// 127.x.y.z address.
func socketPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestCountReceived(t *testing.T) {
	payload := strings.Repeat("weft", 100_000) // 400 kB: several reads
	tests := []struct {
		name string
		// copy moves payload through w (the counted writer) and returns
		// what arrived on the other side.
		copy func(t *testing.T, wrap func(io.Writer) io.Writer) string
	}{
		{"write calls into a buffer", func(t *testing.T, wrap func(io.Writer) io.Writer) string {
			var buf bytes.Buffer
			w := wrap(struct{ io.Writer }{&buf})
			for p := payload; p != ""; {
				n := min(len(p), 4096)
				if _, err := w.Write([]byte(p[:n])); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			return buf.String()
		}},
		{"socket to socket keeps ReadFrom (kernel splice)", func(t *testing.T, wrap func(io.Writer) io.Writer) string {
			srcC, srcS := socketPair(t)
			dstC, dstS := socketPair(t)
			w := wrap(dstC)
			if _, ok := w.(io.ReaderFrom); !ok {
				t.Fatal("a *net.TCPConn destination lost its ReadFrom")
			}
			got := make(chan string, 1)
			go func() { b, _ := io.ReadAll(dstS); got <- string(b) }()
			go func() { _, _ = io.WriteString(srcC, payload); _ = srcC.CloseWrite() }()
			if _, err := io.Copy(w, srcS); err != nil {
				t.Fatal(err)
			}
			_ = dstC.CloseWrite()
			return <-got
		}},
		{"reader to socket counts through Write", func(t *testing.T, wrap func(io.Writer) io.Writer) string {
			dstC, dstS := socketPair(t)
			got := make(chan string, 1)
			go func() { b, _ := io.ReadAll(dstS); got <- string(b) }()
			// A reader that is neither a WriterTo nor a socket (an HTTP/2 body).
			if _, err := io.Copy(wrap(dstC), struct{ io.Reader }{strings.NewReader(payload)}); err != nil {
				t.Fatal(err)
			}
			_ = dstC.CloseWrite()
			return <-got
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tcp := NewTCP(prometheus.NewRegistry())
			s := tcp.Series(tcpLV)
			got := tc.copy(t, s.CountReceived)
			if got != payload {
				t.Fatalf("%d bytes arrived, want %d", len(got), len(payload))
			}
			if n := testutil.ToFloat64(s.Received); n != float64(len(payload)) {
				t.Errorf("received = %v, want %d", n, len(payload))
			}
		})
	}
}

// BenchmarkCountReceived: what counting adds to one 32 KiB write of a
// splice loop (no copy: the counter add only).
func BenchmarkCountReceived(b *testing.B) {
	buf := make([]byte, 32<<10)
	s := NewTCP(prometheus.NewRegistry()).Series(tcpLV)
	for _, bc := range []struct {
		name string
		w    io.Writer
	}{{"plain", struct{ io.Writer }{io.Discard}}, {"counted", s.CountReceived(struct{ io.Writer }{io.Discard})}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				_, _ = bc.w.Write(buf)
			}
		})
	}
}
