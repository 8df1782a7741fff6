package retry

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"
	route "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"
	"github.com/weftmesh/weft/sidecar/transport"
)

func TestRetryable(t *testing.T) {
	def := Default()
	codes := &Policy{On: RetriableCodes | ConnectFailure, Codes: []int{503}, NumRetries: 2}
	fivexx := &Policy{On: Status5xx, NumRetries: 2}
	nonIdem := &Policy{On: Status5xx, NumRetries: 2, NonIdempotent: true}
	dial := &transport.DialError{Addr: "x", Err: errors.New("refused")}
	appUnreachable := http.Header{}
	appUnreachable.Set(mesh.HeaderAppUnreachable, "1")
	tests := []struct {
		name   string
		p      *Policy
		method string
		status int
		header http.Header
		err    error
		via    bool
		want   bool
	}{
		{"connect failure GET", def, "GET", 0, nil, dial, false, true},
		{"connect failure POST", def, "POST", 0, nil, dial, false, true},
		{"reset GET", def, "GET", 0, nil, errors.New("stream reset"), false, true},
		{"reset POST", def, "POST", 0, nil, errors.New("stream reset"), false, false},
		{"refused stream POST", def, "POST", 0, nil, errors.New("stream error: REFUSED_STREAM"), false, true},
		{"above GOAWAY's last stream POST", def, "POST", 0, nil, fmt.Errorf("%w: GOAWAY", transport.ErrNotProcessed), false, true},
		{"421 from a sidecar POST", def, "POST", 421, nil, nil, true, true},
		{"421 from an app", def, "GET", 421, nil, nil, false, false},
		{"503 not configured", def, "GET", 503, nil, nil, false, false},
		{"503 listed", codes, "GET", 503, nil, nil, false, true},
		{"500 not listed", codes, "GET", 500, nil, nil, false, false},
		{"5xx GET", fivexx, "GET", 500, nil, nil, false, true},
		{"5xx POST", fivexx, "POST", 500, nil, nil, false, false},
		{"5xx POST non-idempotent allowed", nonIdem, "POST", 500, nil, nil, false, true},
		{"200", fivexx, "GET", 200, nil, nil, false, false},
		{"503 app unreachable from a sidecar POST", def, "POST", 503, appUnreachable, nil, true, true},
		{"503 app unreachable header from an app", def, "GET", 503, appUnreachable, nil, false, false},
		{"502 from a sidecar", def, "GET", 502, appUnreachable, nil, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ClassifyResponse(tc.status, tc.header, tc.err, tc.via)
			if tc.header == nil && c != Classify(tc.status, tc.err, tc.via) {
				t.Errorf("Classify and ClassifyResponse with no header disagree")
			}
			if got := tc.p.Retryable(tc.method, tc.status, c); got != tc.want {
				t.Errorf("Retryable = %v, want %v (condition %b)", got, tc.want, c)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	p := &Policy{BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond}
	for n := 1; n <= 8; n++ {
		d := min(p.BackoffBase<<(n-1), p.BackoffMax)
		for range 200 {
			got := p.Backoff(n)
			if got < p.BackoffBase || got > p.BackoffMax || got < d || got >= d+d/2+1 && got != p.BackoffMax {
				t.Fatalf("Backoff(%d) = %s, want in [%s, min(%s, max)]", n, got, d, d+d/2)
			}
		}
	}
}

func TestCompile(t *testing.T) {
	p, err := Compile(&route.RetryPolicy{
		RetryOn:              "connect-failure,retriable-status-codes,5xx",
		NumRetries:           wrapperspb.UInt32(3),
		PerTryTimeout:        durationpb.New(time.Second),
		RetriableStatusCodes: []uint32{503},
		RetryBackOff:         &route.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(10 * time.Millisecond)},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.On != ConnectFailure|RetriableCodes|Status5xx || p.NumRetries != 3 || p.PerTryTimeout != time.Second ||
		p.BackoffBase != 10*time.Millisecond || p.BackoffMax != 100*time.Millisecond || len(p.Codes) != 1 {
		t.Errorf("got %+v", p)
	}
	if _, err := Compile(&route.RetryPolicy{RetryOn: "envoy-ratelimited"}, false); err == nil {
		t.Error("unknown condition accepted")
	}
	if p, _ := Compile(nil, false); p.NumRetries != 0 {
		t.Errorf("nil policy: %d retries", p.NumRetries)
	}
}

func TestBufferBody(t *testing.T) {
	small, _ := http.NewRequest(http.MethodPost, "http://x/", stringsReader("hello"))
	b, ok, err := BufferBody(small, 10)
	if err != nil || !ok || b.Len() != 5 {
		t.Fatalf("small: %v %v %v", b, ok, err)
	}
	big, _ := http.NewRequest(http.MethodPost, "http://x/", stringsReader("hello world, too big"))
	big.ContentLength = -1
	b, ok, err = BufferBody(big, 10)
	if err != nil || ok || b != nil {
		t.Fatalf("big: %v %v %v", b, ok, err)
	}
	all := make([]byte, 64)
	n, _ := big.Body.Read(all)
	for n < 20 {
		m, err := big.Body.Read(all[n:])
		n += m
		if err != nil {
			break
		}
	}
	if string(all[:n]) != "hello world, too big" {
		t.Errorf("streamed body %q", all[:n])
	}
}
