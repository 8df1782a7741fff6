// Package h2key converts header names between the canonical form of
// net/http's http.Header and HTTP/2's lower-case form, without allocating
// for the common names (a table built once, never written after).
// sidecar/h2client uses it for requests it encodes and responses it
// decodes.
package h2key
