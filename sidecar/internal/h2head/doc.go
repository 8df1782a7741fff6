// Package h2head reads an HTTP/2 connection's frames with x/net's
// http2.Framer and merges each HEADERS frame and its CONTINUATION frames
// into an http2.MetaHeadersFrame, as the Framer does itself when its
// ReadMetaHeaders is set, with the same checks and errors, but into one
// MetaHeadersFrame and one field slice that the Reader reuses for every
// header block of the connection (issue 11). The Framer's own merge
// makes a MetaHeadersFrame, a decoding closure and a field slice grown
// by doubling for each block: about 1 KB per gRPC call in each sidecar
// (request head, response head, trailers), the largest source of the
// garbage whose collection cycles set the gRPC tail. The Framer reuses
// its DATA frames too (http2.Framer.SetReuseFrames).
//
// The connection core both sidecar/h2server and sidecar/h2client share
// (sidecar/internal/h2conn) reads with it. What ReadFrame
// returns is valid until the next ReadFrame, as the Framer's frames are:
// a caller copies what it keeps of the fields (their strings are its
// to keep).
package h2head
