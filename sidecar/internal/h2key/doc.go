// Package h2key converts header names between the canonical form of
// net/http's http.Header and HTTP/2's lower-case form, without allocating
// for the common names (a table built once, never written after).
// sidecar/h2server and sidecar/h2client use it for the heads they
// encode and decode.
package h2key
