package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

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

// await waits for ch, failing when the request ended first or nothing
// happened for long (a hang guard, not a timing assertion).
func await[T any](t *testing.T, what string, ch <-chan T, done <-chan putResult) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case res := <-done:
		t.Fatalf("the request ended before %s: %+v", what, res)
	case <-time.After(20 * time.Second):
		t.Fatalf("waited 20 s for %s", what)
	}
	var zero T
	return zero
}

func write(t *testing.T, pw *io.PipeWriter, b []byte) {
	t.Helper()
	if _, err := pw.Write(b); err != nil {
		t.Fatalf("client body write: %v", err)
	}
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
		write(t, pw, a)
		await(t, "the first try's reset", up.Reset, done)
		write(t, pw, p1)
		await(t, "the retry having the copy", up.GotPrefix, done)
		write(t, pw, p2)
		_ = pw.Close()
		res := await(t, "the response", done, nil)
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
		write(t, pw, a)
		await(t, "the first try's reset", up.Reset, done)
		_, _ = pw.Write([]byte("more")) // the request may have failed meanwhile
		_ = pw.Close()
		res := await(t, "the response", done, nil)
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
		write(t, pw, a)
		await(t, "the site having the first part", up.GotPrefix, done)
		cancel()
		_ = pw.CloseWithError(errors.New("client gone"))
		if res := await(t, "the response", done, nil); res.err == nil {
			t.Errorf("a cancelled request got a response: %d %q", res.code, res.body)
		}
		if err := await(t, "the site's end", up.FirstEnded, nil); err == nil {
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
