package h2client

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzResponseFrames: a peer that answers a request with arbitrary bytes
// (after a valid SETTINGS). Whatever they are, RoundTrip and the body's
// reads return, nothing panics, and Close ends every goroutine of the
// client.
func FuzzResponseFrames(f *testing.F) {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	_ = enc.WriteField(hpack.HeaderField{Name: "trailer", Value: "grpc-status"})
	head := append([]byte(nil), hb.Bytes()...)
	hb.Reset()
	_ = enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
	trailers := append([]byte(nil), hb.Bytes()...)
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head, EndHeaders: true})
	_ = fr.WriteData(1, false, []byte("hello"))
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: trailers, EndStream: true, EndHeaders: true})
	f.Add(append([]byte(nil), b.Bytes()...))
	b.Reset()
	_ = fr.WriteWindowUpdate(0, 1)
	_ = fr.WriteWindowUpdate(1, 1<<31-1)
	_ = fr.WritePing(false, [8]byte{1})
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head, EndHeaders: false})
	_ = fr.WriteContinuation(1, true, nil)
	_ = fr.WriteRSTStream(1, http2.ErrCodeRefusedStream)
	_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	f.Add(append([]byte(nil), b.Bytes()...))
	b.Reset()
	_ = fr.WriteData(1, true, []byte("early"))
	_ = fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: head, EndHeaders: true})
	f.Add(append([]byte(nil), b.Bytes()...))

	f.Fuzz(func(t *testing.T, data []byte) { fuzzOne(data) })
}

func fuzzOne(data []byte) {
	{
		// A pipe, not TCP: thousands of runs leave no ports in TIME_WAIT.
		cnc, snc := net.Pipe()
		served := make(chan struct{})
		go func() {
			defer close(served)
			defer snc.Close()
			// A reader of its own: the client writes while the peer does.
			gotHeaders := make(chan struct{})
			go func() {
				buf := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(snc, buf); err != nil {
					close(gotHeaders)
					return
				}
				sfr := http2.NewFramer(io.Discard, snc)
				seen := false
				for {
					f, err := sfr.ReadFrame()
					if err != nil {
						break
					}
					if _, ok := f.(*http2.HeadersFrame); ok && !seen {
						seen = true
						close(gotHeaders)
					}
				}
				if !seen {
					close(gotHeaders)
				}
				_, _ = io.Copy(io.Discard, snc)
			}()
			sfr := http2.NewFramer(snc, nil)
			_ = sfr.WriteSettings()
			<-gotHeaders
			// The bytes end there: the client sees the connection end
			// after them.
			_, _ = snc.Write(data)
		}()
		dialed := false
		c := New(func(context.Context, string) (net.Conn, error) {
			if dialed {
				return nil, io.ErrUnexpectedEOF
			}
			dialed = true
			return cnc, nil
		}, WithMaxHeaderBytes(4<<10), WithWindows(1<<16, 1<<16))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://peer/", strings.NewReader("request body"))
		resp, err := c.RoundTrip(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		_ = c.Close()
		<-served
	}
}
