package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/internal/bodytest"
)

const replayRetries = `{"retryOn":"connect-failure,refused-stream,reset","numRetries":2,"retryBackOff":{"baseInterval":"0.001s","maxInterval":"0.010s"}}`

type putResult struct {
	code int
	body string
	err  error
}

// streamPut sends a PUT to the destination name on the site's port whose
// body is what the test writes to the returned pipe (unknown length: an
// HTTP/2 stream to the gateway).
func (e *env) streamPut(t *testing.T, ctx context.Context, name string, site uint32) (*io.PipeWriter, <-chan putResult) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+e.gw+"/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = fmt.Sprintf("%s.example.test:%d", name, site)
	c := client(t, order)
	c.Timeout = 0 // the test's waits bound it
	done := make(chan putResult, 1)
	go func() {
		resp, err := c.Do(req)
		if err != nil {
			done <- putResult{err: err}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		done <- putResult{resp.StatusCode, string(b), err}
	}()
	return pw, done
}

// The gateway replays a streamed body whose first try the external host
// reset after reading part of it: the retry gets the copy, then the rest
// of the client's live body, byte for byte; over the retry buffer limit it
// does not retry; a client that goes away mid-body ends the request
// without a retry.
func TestStreamedBodyReplay(t *testing.T) {
	t.Run("partly read, then reset: replayed whole", func(t *testing.T) {
		a, p1, p2 := bodytest.Body(11, 20000), bodytest.Body(12, 3000), bodytest.Body(13, 5000)
		want := bytes.Join([][]byte{a, p1, p2}, nil)
		up := bodytest.NewUpstream(4096, len(a)+len(p1), want)
		site := serveSite(t, up.ServeHTTP)
		e := start(t, resilient("replay", site, "0s", replayRetries, "", ""))
		pw, done := e.streamPut(t, t.Context(), "replay", site)
		bodytest.Write(t, pw, a)
		bodytest.Await(t, "the first try's reset", up.Reset, done)
		bodytest.Write(t, pw, p1)
		bodytest.Await(t, "the retry having the copy", up.GotPrefix, done)
		bodytest.Write(t, pw, p2)
		_ = pw.Close()
		res := bodytest.Wait(t, "the response", done)
		if wantBody := fmt.Sprintf("ok %d", len(want)); res.err != nil || res.code != http.StatusOK || res.body != wantBody {
			t.Errorf("response %d %q (%v), want 200 %q", res.code, res.body, res.err, wantBody)
		}
		if up.Hits() != 2 {
			t.Errorf("the site got %d requests, want 2", up.Hits())
		}
		e.log.waitFor(t, `"attempts":2`)
	})
	t.Run("over the limit: not retried", func(t *testing.T) {
		a := bodytest.Body(14, mesh.DefaultRetryBufferBytes+5000)
		up := bodytest.NewUpstream(len(a), 0, nil)
		site := serveSite(t, up.ServeHTTP)
		e := start(t, resilient("replay", site, "0s", replayRetries, "", ""))
		pw, done := e.streamPut(t, t.Context(), "replay", site)
		bodytest.Write(t, pw, a)
		bodytest.Await(t, "the first try's reset", up.Reset, done)
		_, _ = pw.Write([]byte("more")) // the request may have failed meanwhile
		_ = pw.Close()
		res := bodytest.Wait(t, "the response", done)
		if res.err != nil || res.code != http.StatusBadGateway {
			t.Errorf("response %d %q (%v), want 502", res.code, res.body, res.err)
		}
		log := e.log.waitFor(t, `"reason":"upstream_failed"`)
		if up.Hits() != 1 {
			t.Errorf("the site got %d requests, want 1: a body over the limit was sent again\n%s", up.Hits(), log)
		}
	})
	t.Run("client gone mid-body: not retried", func(t *testing.T) {
		a := bodytest.Body(15, 20000)
		up := bodytest.NewUpstream(-1, len(a), nil)
		site := serveSite(t, up.ServeHTTP)
		e := start(t, resilient("replay", site, "0s", replayRetries, "", ""))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		pw, done := e.streamPut(t, ctx, "replay", site)
		bodytest.Write(t, pw, a)
		bodytest.Await(t, "the site having the first part", up.GotPrefix, done)
		cancel()
		_ = pw.CloseWithError(errors.New("client gone"))
		if res := bodytest.Wait(t, "the response", done); res.err == nil {
			t.Errorf("a cancelled request got a response: %d %q", res.code, res.body)
		}
		if err := bodytest.Wait(t, "the site's end", up.FirstEnded); err == nil {
			t.Error("the site read the body to a clean end though the client went away in its middle")
		}
		// The access log is written once the handler returned (its body's
		// pump stopped).
		log := e.log.waitFor(t, `"reason":"client_gone"`)
		if up.Hits() != 1 {
			t.Errorf("the site got %d requests, want 1\n%s", up.Hits(), log)
		}
	})
}
