package h2head

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// defaultMaxHeaderList is the Framer's limit when its MaxHeaderListSize
// is 0.
const defaultMaxHeaderList = 16 << 20

var errPseudoAfterRegular = errors.New("pseudo header field after regular")

// Reader reads frames from a Framer whose ReadMetaHeaders is nil; see the
// package doc.
type Reader struct {
	fr  *http2.Framer
	dec *hpack.Decoder
	mh  http2.MetaHeadersFrame

	// The block being decoded (emit's state).
	headersRemain, trailersRemain uint32
	sawRegular                    bool
	invalid                       error
}

// NewReader reads fr's frames, decoding header blocks with dec (the
// connection's HPACK decoder). fr.ReadMetaHeaders must be nil, and its
// MaxHeaderListSize bounds each block as it bounds the Framer's. fr
// reuses its DATA frames too (SetReuseFrames): one frame per connection,
// not one per DATA frame read.
func NewReader(fr *http2.Framer, dec *hpack.Decoder) *Reader {
	fr.SetReuseFrames()
	r := &Reader{fr: fr, dec: dec}
	dec.SetEmitFunc(r.emit)
	return r
}

// ReadFrame reads the next frame; a HEADERS frame comes back as a
// *http2.MetaHeadersFrame with its CONTINUATION frames merged, valid
// until the next ReadFrame. Errors are the Framer's: a ConnectionError
// for a block too large to decode or that does not decode, a
// StreamError for a malformed field; Truncated marks a block over the
// header list limit, as the Framer does.
func (r *Reader) ReadFrame() (http2.Frame, error) {
	f, err := r.fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	hf, ok := f.(*http2.HeadersFrame)
	if !ok {
		return f, nil
	}
	return r.readBlock(hf)
}

func (r *Reader) maxHeaderList() uint32 {
	if r.fr.MaxHeaderListSize == 0 {
		return defaultMaxHeaderList
	}
	return r.fr.MaxHeaderListSize
}

// readBlock is x/net's Framer.readMetaFrame (v0.62.0) into r.mh.
func (r *Reader) readBlock(hf *http2.HeadersFrame) (http2.Frame, error) {
	clear(r.mh.Fields) // drop the previous block's strings
	r.mh = http2.MetaHeadersFrame{HeadersFrame: hf, Fields: r.mh.Fields[:0]}
	limit := r.maxHeaderList()
	r.headersRemain, r.trailersRemain = limit, limit
	r.sawRegular = false
	r.invalid = nil
	maxString := int(limit)
	if maxString < 0 {
		maxString = 0 // no limit, as the Framer's
	}
	r.dec.SetEmitEnabled(true)
	r.dec.SetMaxStringLength(maxString)

	var hc interface {
		HeaderBlockFragment() []byte
		HeadersEnded() bool
	} = hf
	for {
		frag := hc.HeaderBlockFragment()
		// A fragment more than twice the bytes still accepted, or any
		// CONTINUATION once over the limit (both budgets 0), ends the
		// connection without decoding it (CVE-2024-27316); so does a
		// CONTINUATION after an invalid field.
		if int64(len(frag)) > 2*int64(r.headersRemain+r.trailersRemain) || r.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := r.dec.Write(frag); err != nil {
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if hc.HeadersEnded() {
			break
		}
		f, err := r.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		cf, ok := f.(*http2.ContinuationFrame)
		if !ok {
			// The Framer checks that CONTINUATION follows.
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		hc = cf
	}
	if err := r.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if r.invalid != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: r.invalid}
	}
	if err := checkPseudos(r.mh.PseudoFields()); err != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return &r.mh, nil
}

// emit is the decoder's: it checks each field and appends it, as the
// Framer's.
func (r *Reader) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		// The value is not in the error: it may be sensitive.
		r.invalid = fmt.Errorf("invalid header field value for %q", hf.Name)
	}
	if strings.HasPrefix(hf.Name, ":") {
		if r.sawRegular {
			r.invalid = errPseudoAfterRegular
		}
	} else {
		r.sawRegular = true
		if !validWireName(hf.Name) {
			r.invalid = fmt.Errorf("invalid header field name %q", hf.Name)
		}
	}
	if r.invalid != nil {
		r.dec.SetEmitEnabled(false)
		return
	}
	remain := &r.headersRemain
	size := hf.Size()
	if hf.Name == "trailer" {
		// Each declared trailer counts as a field of its own.
		remain = &r.trailersRemain
		n := uint32(strings.Count(hf.Value, ",") + 1)                       //nolint:gosec // bounded by the value's length
		size = uint32(len(hf.Value)) - n + 1 + n*hpack.HeaderField{}.Size() //nolint:gosec // bounded by the header list limit
	}
	if size > *remain {
		r.dec.SetEmitEnabled(false)
		r.mh.Truncated = true
		r.headersRemain, r.trailersRemain = 0, 0
		return
	}
	*remain -= size
	r.mh.Fields = append(r.mh.Fields, hf)
}

// validWireName: a token in lower case (RFC 9113 8.2.1).
func validWireName(v string) bool {
	if v == "" {
		return false
	}
	for _, c := range v {
		if !httpguts.IsTokenRune(c) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// checkPseudos: known pseudo-header fields, none twice, not of both a
// request and a response.
func checkPseudos(pf []hpack.HeaderField) error {
	var isRequest, isResponse bool
	for i, hf := range pf {
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			isRequest = true
		case ":status":
			isResponse = true
		default:
			return fmt.Errorf("invalid pseudo-header %q", hf.Name)
		}
		for _, hf2 := range pf[:i] {
			if hf.Name == hf2.Name {
				return fmt.Errorf("duplicate pseudo-header %q", hf.Name)
			}
		}
	}
	if isRequest && isResponse {
		return errors.New("mix of request and response pseudo headers")
	}
	return nil
}
