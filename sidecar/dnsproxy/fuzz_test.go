package dnsproxy

import (
	"log/slog"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzAnswer feeds untrusted bytes (what an app, or anything that can
// reach 127.0.0.1:15053, sends) to the query path: it must never panic,
// every reply must parse and carry the query's id, and the forwarder
// only ever sees messages whose header parsed as a query.
func FuzzAnswer(f *testing.F) {
	for _, q := range [][]byte{
		query(f, 1, "cart.shop.", dnsmessage.TypeA),
		query(f, 2, "pay.billing.svc.cluster.local.", dnsmessage.TypeAAAA),
		query(f, 3, "example.com.", dnsmessage.TypeMX),
		{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, // a question that points at itself
		{},
	} {
		f.Add(q, false)
	}
	s := New(&fakeForwarder{}, WithLogger(slog.New(slog.DiscardHandler)))
	s.SetTable(testTable())
	failing := New(&fakeForwarder{fail: true}, WithLogger(slog.New(slog.DiscardHandler)))
	failing.SetTable(testTable())
	f.Fuzz(func(t *testing.T, q []byte, upstreamDown bool) {
		srv := s
		if upstreamDown {
			srv = failing
		}
		for _, network := range []string{"udp", "tcp"} {
			r := srv.Answer(t.Context(), network, q)
			if r == nil {
				continue
			}
			var qp, rp dnsmessage.Parser
			qh, err := qp.Start(q)
			if err != nil {
				t.Fatalf("replied to a message whose header does not parse: %x", q)
			}
			rh, err := rp.Start(r)
			if err != nil {
				t.Fatalf("reply does not parse: %v (%x)", err, r)
			}
			if rh.ID != qh.ID || !rh.Response {
				t.Fatalf("reply header %+v for query id %d", rh, qh.ID)
			}
			if network == "udp" && len(r) > maxUDPAnswer && !rh.Truncated {
				// Forwarded replies are relayed as they are; ours fit.
				if rh.Authoritative {
					t.Fatalf("own UDP answer of %d bytes", len(r))
				}
			}
		}
	})
}
