package dnsproxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/weftmesh/weft/api/mesh"
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(s))
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func testTable() *Table {
	return NewTable("shop", []Service{
		{Host: "cart.shop.svc.cluster.local", Addresses: addrs("10.96.0.10")},
		{Host: "cart.shop.svc.cluster.local", Addresses: addrs("10.96.0.10")}, // a second port
		{Host: "Pay.Billing.svc.cluster.local", Addresses: addrs("10.96.0.20", "fd00::20")},
		{Host: "headless.shop.svc.cluster.local"},
		{Host: "v6.shop.svc.cluster.local", Addresses: addrs("fd00::30")},
	})
}

func TestTableLookup(t *testing.T) {
	tab := testTable()
	for _, tc := range []struct {
		name string
		want []netip.Addr
	}{
		{"cart.shop.svc.cluster.local.", addrs("10.96.0.10")},
		{"cart.shop.svc.cluster.local", addrs("10.96.0.10")},
		{"cart.shop.svc", addrs("10.96.0.10")},
		{"cart.shop", addrs("10.96.0.10")},
		{"cart", addrs("10.96.0.10")}, // own namespace
		{"CART.Shop.", addrs("10.96.0.10")},
		{"pay.billing", addrs("10.96.0.20", "fd00::20")},
		{"pay.billing.svc.cluster.local", addrs("10.96.0.20", "fd00::20")},
		{"pay", nil}, // another namespace: not short
		{"headless.shop", nil},
		{"cart.shop.shop.svc.cluster.local", nil}, // a search-path miss
		{"example.com", nil},
		{"v6.shop", addrs("fd00::30")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tab.Lookup(tc.name)
			if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
				t.Errorf("Lookup(%q) = %v, %v; want %v", tc.name, got, ok, tc.want)
			}
		})
	}
	if tab.Len() != 4+3+4 { // cart and v6 (own namespace, 4 names each), pay (3)
		t.Errorf("Len %d", tab.Len())
	}
}

func TestServiceOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		host    string
		addrs   []string
		want    Service
		wantOK  bool
		wantErr bool
	}{
		{"cluster IP", "cart.shop.svc.cluster.local", []string{"10.96.0.10"}, Service{Host: "cart.shop.svc.cluster.local", Addresses: addrs("10.96.0.10")}, true, false},
		{"headless", "headless.shop.svc.cluster.local", []string{}, Service{Host: "headless.shop.svc.cluster.local"}, true, false},
		{"no address list", "x.y.svc.z", nil, Service{}, false, false},
		{"no host (inbound)", "", []string{"10.96.0.10"}, Service{}, false, false},
		{"bad address", "x.y.svc.z", []string{"not-an-ip"}, Service{}, false, true},
		{"address not a string", "x.y.svc.z", []string{""}, Service{}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ServiceOf("outbound|80||"+tc.host, tc.host, tc.addrs)
			if (err != nil) != tc.wantErr || ok != tc.wantOK || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("ServiceOf = %v, %v, %v; want %v, %v, error %v", got, ok, err, tc.want, tc.wantOK, tc.wantErr)
			}
		})
	}
}

func query(t testing.TB, id uint16, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}},
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeForwarder records what was forwarded and answers with a fixed A
// record (or fails).
type fakeForwarder struct {
	mu   sync.Mutex
	got  []string // "<network> <name>"
	fail bool
}

func (f *fakeForwarder) Forward(_ context.Context, network string, q []byte) ([]byte, error) {
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil {
		return nil, err
	}
	name := ""
	if len(m.Questions) > 0 {
		name = m.Questions[0].Name.String()
	}
	f.mu.Lock()
	f.got = append(f.got, network+" "+name)
	f.mu.Unlock()
	if f.fail {
		return nil, errors.New("upstream down")
	}
	m.Header.Response = true
	if len(m.Questions) > 0 && m.Questions[0].Type == dnsmessage.TypeA {
		m.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: m.Questions[0].Name, Class: dnsmessage.ClassINET, TTL: 5},
			Body:   &dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}},
		}}
	}
	return m.Pack()
}

func answers(t testing.TB, r []byte) (dnsmessage.Header, []string) {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(r); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	var out []string
	for _, a := range m.Answers {
		switch b := a.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, netip.AddrFrom4(b.A).String())
		case *dnsmessage.AAAAResource:
			out = append(out, netip.AddrFrom16(b.AAAA).String())
		}
	}
	return m.Header, out
}

func TestAnswer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		q         []byte
		fail      bool
		want      []string // answers
		rcode     dnsmessage.RCode
		auth      bool
		forwarded string // "" = answered here
		noReply   bool
	}{
		{name: "A svc.ns", q: query(t, 1, "cart.shop.", dnsmessage.TypeA), want: []string{"10.96.0.10"}, auth: true},
		{name: "A fqdn", q: query(t, 2, "cart.shop.svc.cluster.local.", dnsmessage.TypeA), want: []string{"10.96.0.10"}, auth: true},
		{name: "A short", q: query(t, 3, "cart.", dnsmessage.TypeA), want: []string{"10.96.0.10"}, auth: true},
		{name: "AAAA of a v4 service: NODATA", q: query(t, 4, "cart.shop.", dnsmessage.TypeAAAA), auth: true},
		{name: "AAAA dual stack", q: query(t, 5, "pay.billing.", dnsmessage.TypeAAAA), want: []string{"fd00::20"}, auth: true},
		{name: "A dual stack", q: query(t, 6, "pay.billing.svc.", dnsmessage.TypeA), want: []string{"10.96.0.20"}, auth: true},
		{name: "other name forwarded", q: query(t, 7, "example.com.", dnsmessage.TypeA), want: []string{"192.0.2.1"}, forwarded: "udp example.com."},
		{name: "search miss forwarded", q: query(t, 8, "cart.shop.shop.svc.cluster.local.", dnsmessage.TypeA), want: []string{"192.0.2.1"}, forwarded: "udp cart.shop.shop.svc.cluster.local."},
		{name: "SRV of a mesh name forwarded", q: query(t, 9, "cart.shop.svc.cluster.local.", dnsmessage.TypeSRV), forwarded: "udp cart.shop.svc.cluster.local."},
		{name: "headless forwarded", q: query(t, 10, "headless.shop.", dnsmessage.TypeA), want: []string{"192.0.2.1"}, forwarded: "udp headless.shop."},
		{name: "upstream down: SERVFAIL", q: query(t, 11, "example.com.", dnsmessage.TypeA), fail: true, rcode: dnsmessage.RCodeServerFailure, forwarded: "udp example.com."},
		{name: "garbage: no reply", q: []byte{1, 2, 3}, noReply: true},
		{name: "a reply: no reply", q: func() []byte { b := query(t, 12, "cart.shop.", dnsmessage.TypeA); b[2] |= 0x80; return b }(), noReply: true},
		{name: "bad question: FORMERR", q: func() []byte { b := query(t, 13, "cart.shop.", dnsmessage.TypeA); return b[:len(b)-3] }(), rcode: dnsmessage.RCodeFormatError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeForwarder{fail: tc.fail}
			s := New(f, WithLogger(slog.New(slog.DiscardHandler)))
			s.SetTable(testTable())
			r := s.Answer(t.Context(), "udp", tc.q)
			if tc.noReply {
				if r != nil {
					t.Fatalf("replied %x", r)
				}
				return
			}
			h, got := answers(t, r)
			if !h.Response || h.RCode != tc.rcode || h.Authoritative != tc.auth || !slices.Equal(got, tc.want) {
				t.Errorf("reply %+v answers %v; want rcode %v auth %v answers %v", h, got, tc.rcode, tc.auth, tc.want)
			}
			var qh dnsmessage.Parser
			if qhdr, err := qh.Start(tc.q); err == nil && h.ID != qhdr.ID {
				t.Errorf("id %d, want %d", h.ID, qhdr.ID)
			}
			if fw := strings.Join(f.got, ","); fw != tc.forwarded {
				t.Errorf("forwarded %q, want %q", fw, tc.forwarded)
			}
		})
	}
}

func TestEmptyTableForwardsEverything(t *testing.T) {
	f := &fakeForwarder{}
	s := New(f, WithLogger(slog.New(slog.DiscardHandler)))
	if _, got := answers(t, s.Answer(t.Context(), "tcp", query(t, 1, "cart.shop.", dnsmessage.TypeA))); !slices.Equal(got, []string{"192.0.2.1"}) || len(f.got) != 1 {
		t.Errorf("answers %v, forwarded %v", got, f.got)
	}
}

func TestParseResolvConf(t *testing.T) {
	got, err := ParseResolvConf(strings.NewReader("# k8s\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.96.0.10:53", "[fd00::a]:53"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := ParseResolvConf(strings.NewReader("nameserver bogus\n")); err == nil {
		t.Error("a bad nameserver was accepted")
	}
}

// randomLoopback is a 127.x.y.z address unlikely to clash with other
// tests on the machine.
func randomLoopback(t testing.TB) string {
	t.Helper()
	b := make([]byte, 3)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(250))
		if err != nil {
			t.Fatal(err)
		}
		b[i] = byte(n.Int64() + 2)
	}
	return fmt.Sprintf("127.%d.%d.%d", b[0], b[1], b[2])
}

// TestServeForwardsOverUDPAndTCP runs the proxy on real sockets with a
// real upstream resolver (a Server whose table holds example.com) and
// resolves mesh and other names over both transports.
func TestServeForwardsOverUDPAndTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	serve := func(s *Server) string {
		pc, ln, err := Listen(ctx, net.JoinHostPort(randomLoopback(t), "0"))
		if err != nil {
			t.Fatal(err)
		}
		// The TCP listener picked its own port; move UDP there.
		_ = pc.Close()
		addr := ln.Addr().String()
		pc, err = (&net.ListenConfig{}).ListenPacket(ctx, "udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, pc, ln) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
		return addr
	}
	upstream := New(Upstreams{}, WithLogger(log)) // answers its table, SERVFAIL otherwise
	upstream.SetTable(NewTable("", []Service{{Host: "example.com", Addresses: addrs("192.0.2.7")}}))
	upAddr := serve(upstream)
	proxy := New(Upstreams{Addrs: []string{net.JoinHostPort(randomLoopback(t), "9"), upAddr}, Timeout: 500 * time.Millisecond}, WithLogger(log))
	proxy.SetTable(testTable())
	addr := serve(proxy)

	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	for _, tc := range []struct{ name, want string }{
		{"cart.shop.", "10.96.0.10"},
		{"cart.shop.svc.cluster.local.", "10.96.0.10"},
		{"example.com.", "192.0.2.7"},
	} {
		got, err := r.LookupNetIP(ctx, "ip4", tc.name)
		if err != nil || len(got) != 1 || got[0].String() != tc.want {
			t.Errorf("udp %s: %v %v, want %s", tc.name, got, err, tc.want)
		}
	}
	// TCP, with a raw exchange (the Go resolver uses TCP only after TC).
	for _, name := range []string{"pay.billing.", "example.com."} {
		got, err := exchange(ctx, &net.Dialer{}, "tcp", addr, query(t, 77, name, dnsmessage.TypeA), 5*time.Second)
		if err != nil {
			t.Fatalf("tcp %s: %v", name, err)
		}
		if _, as := answers(t, got); len(as) != 1 {
			t.Errorf("tcp %s: answers %v", name, as)
		}
	}
	// A name neither knows: the upstream's SERVFAIL comes back as it is.
	if _, err := r.LookupNetIP(ctx, "ip4", "nowhere.invalid."); err == nil {
		t.Error("an unknown name resolved")
	}
}

func TestQueryMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(&fakeForwarder{}, WithLogger(slog.New(slog.DiscardHandler)), WithRegisterer(reg))
	s.SetTable(testTable())
	down := New(&fakeForwarder{fail: true}, WithLogger(slog.New(slog.DiscardHandler)), WithRegisterer(reg)) // shares the counter
	for _, q := range [][]byte{
		query(t, 1, "cart.shop.", dnsmessage.TypeA),
		query(t, 2, "cart.", dnsmessage.TypeA),
		query(t, 3, "cart.shop.", dnsmessage.TypeAAAA),
		query(t, 4, "example.com.", dnsmessage.TypeA),
		query(t, 5, "cart.shop.", dnsmessage.TypeA)[:20],
		{1, 2, 3},
	} {
		s.Answer(t.Context(), "udp", q)
	}
	down.Answer(t.Context(), "udp", query(t, 6, "example.com.", dnsmessage.TypeA))
	for result, want := range map[string]float64{"answered": 2, "nodata": 1, "forwarded": 1, "formerr": 1, "servfail": 1} {
		if got := testutil.ToFloat64(s.queries.WithLabelValues(result)); got != want {
			t.Errorf("%s{result=%q} = %v, want %v", mesh.MetricDNSQueries, result, got, want)
		}
	}
}
