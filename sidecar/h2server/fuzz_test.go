package h2server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// frames is a frame sequence a client sends after the preface.
func frames(write func(fr *http2.Framer, block func(kv ...string) []byte)) []byte {
	var out, hb bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	enc := hpack.NewEncoder(&hb)
	block := func(kv ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	_ = fr.WriteSettings()
	write(fr, block)
	return out.Bytes()
}

// FuzzServeConn feeds arbitrary frames to a connection (the read path:
// framing, HPACK, stream states, flow control); ServeConn must return
// once the client closed, without panicking.
func FuzzServeConn(f *testing.F) {
	get := []string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"}
	post := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/e", "te", "trailers"}
	f.Add(frames(func(fr *http2.Framer, b func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b(get...), EndStream: true, EndHeaders: true})
	}))
	f.Add(frames(func(fr *http2.Framer, b func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b(post...), EndHeaders: true})
		_ = fr.WriteData(1, false, []byte("hello"))
		_ = fr.WriteWindowUpdate(0, 100)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b("grpc-status", "0"), EndStream: true, EndHeaders: true})
	}))
	f.Add(frames(func(fr *http2.Framer, b func(...string) []byte) {
		blk := b(get...)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk[:3]})
		_ = fr.WriteContinuation(3, true, blk[3:])
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}))
	// Malformed requests answered 400 before their reset.
	f.Add(frames(func(fr *http2.Framer, b func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b(append(get, "connection", "close")...), EndStream: true, EndHeaders: true})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b(append(post, "content-length", "3x")...), EndHeaders: true})
		_ = fr.WriteData(3, true, []byte("abc"))
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: b(append(get, "te", "gzip")...), EndStream: true, EndHeaders: true})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: b(append(post, "content-length", "2")...), EndStream: true, EndHeaders: true})
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &Server{MaxHeaderBytes: 4096, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(w, r.Body)
			w.Header().Set(http.TrailerPrefix+"X-T", "t")
		})}
		cli, srv := net.Pipe()
		done := make(chan struct{})
		go func() {
			s.ServeConn(context.Background(), srv, nil)
			close(done)
		}()
		drained := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, cli)
			close(drained)
		}()
		_, _ = cli.Write(append([]byte(http2.ClientPreface), data...))
		_ = cli.Close()
		<-done
		<-drained
	})
}
