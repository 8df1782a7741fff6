//go:build !linux

package h1client

import "net"

// peerClosed cannot peek here: a connection the server closed while it was
// idle is found when a request fails on it (and is retried: see doc.go).
func peerClosed(net.Conn) bool { return false }
