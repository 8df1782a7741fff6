package metrics

import (
	"io"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/mesh"
)

// tcpLabels are the request labels without response_code: a TCP stream
// has none.
var tcpLabels = requestLabels[:nTCPLabels]

// nTCPLabels is len(tcpLabels).
const nTCPLabels = nRequestLabels - 1

// TCP are the metrics of proxied TCP streams (captured raw TCP, CONNECT
// tunnels, the egress gateway's tunnels): connections opened and closed,
// bytes received from the side that opened the connection and bytes sent
// back to it (docs/architecture.md, "Observability contract").
type TCP struct {
	Opened, Closed, Received, Sent *prometheus.CounterVec

	series sync.Map // tcpKey -> *TCPSeries
}

// TCPSeries are the counters of one label set. Received and Sent are
// added to while bytes move, so a long-lived connection is visible before
// it ends.
type TCPSeries struct {
	Opened, Closed, Received, Sent prometheus.Counter
}

// NewTCP registers the TCP metrics on reg.
func NewTCP(reg prometheus.Registerer) *TCP {
	t := &TCP{
		Opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: mesh.MetricTCPOpened, Help: "TCP connections proxied, counted when they start.",
		}, tcpLabels),
		Closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: mesh.MetricTCPClosed, Help: "TCP connections proxied, counted when they end.",
		}, tcpLabels),
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: mesh.MetricTCPReceivedBytes, Help: "Bytes received from the side that opened the TCP connection.",
		}, tcpLabels),
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: mesh.MetricTCPSentBytes, Help: "Bytes sent back to the side that opened the TCP connection.",
		}, tcpLabels),
	}
	reg.MustRegister(t.Opened, t.Closed, t.Received, t.Sent)
	return t
}

type tcpKey [nTCPLabels]string

// Series returns the counters of a label set (labels in the order of the
// request labels, without response_code), cached like Requests' series.
// Nil-safe: a nil TCP gives a nil series.
func (t *TCP) Series(labels []string) *TCPSeries {
	if t == nil {
		return nil
	}
	if len(labels) != nTCPLabels {
		// Not the contract's label count: let the vectors report it.
		t.Opened.WithLabelValues(labels...)
		return nil
	}
	k := tcpKey(labels)
	if v, ok := t.series.Load(k); ok {
		return v.(*TCPSeries)
	}
	s := &TCPSeries{
		Opened:   t.Opened.WithLabelValues(labels...),
		Closed:   t.Closed.WithLabelValues(labels...),
		Received: t.Received.WithLabelValues(labels...),
		Sent:     t.Sent.WithLabelValues(labels...),
	}
	v, _ := t.series.LoadOrStore(k, s)
	return v.(*TCPSeries)
}

// AddSent counts n bytes sent back to the opener. Nil-safe.
func (s *TCPSeries) AddSent(n int) {
	if s != nil && n > 0 {
		s.Sent.Add(float64(n))
	}
}

// AddReceived counts n bytes received from the opener. Nil-safe.
func (s *TCPSeries) AddReceived(n int) {
	if s != nil && n > 0 {
		s.Received.Add(float64(n))
	}
}

// CountReceived returns w counting what is written to it as received
// bytes (w is the way toward the side that accepted the connection).
// Nothing is copied: Write passes the caller's slice on, and when w is an
// io.ReaderFrom (a *net.TCPConn) so is the result: a copy from another
// socket is handed to w's ReadFrom (keeping the kernel splice between two
// sockets; its bytes are counted when that direction ends), a copy from
// anything else goes through Write and is counted as it moves. A nil s
// returns w.
func (s *TCPSeries) CountReceived(w io.Writer) io.Writer {
	if s == nil {
		return w
	}
	if rf, ok := w.(io.ReaderFrom); ok {
		return countingReaderFrom{countingWriter{w, s.Received}, rf}
	}
	return countingWriter{w, s.Received}
}

// countingWriter adds what it writes to c.
type countingWriter struct {
	w io.Writer
	c prometheus.Counter
}

func (cw countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	if n > 0 {
		cw.c.Add(float64(n))
	}
	return n, err
}

// countingReaderFrom is a countingWriter over an io.ReaderFrom.
type countingReaderFrom struct {
	countingWriter
	rf io.ReaderFrom
}

// ReadFrom hands a socket source to the destination's ReadFrom (which may
// splice in the kernel; counted when it returns) and copies anything else
// through Write, counted as it moves.
func (cw countingReaderFrom) ReadFrom(r io.Reader) (int64, error) {
	if _, sock := r.(syscall.Conn); !sock {
		return io.Copy(cw.countingWriter, r)
	}
	n, err := cw.rf.ReadFrom(r)
	if n > 0 {
		cw.c.Add(float64(n))
	}
	return n, err
}
