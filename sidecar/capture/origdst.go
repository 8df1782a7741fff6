package capture

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and
// IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h): both 80.
const soOriginalDst = 80

// OriginalDst returns the destination c had before iptables redirected it.
// A connection that was not redirected gives an error (ENOENT).
func OriginalDst(c syscall.Conn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("capture: original destination: %w", err)
	}
	var ap netip.AddrPort
	var serr error
	cerr := raw.Control(func(fd uintptr) {
		// IPv4 first: struct sockaddr_in in a 16-byte buffer.
		m, e := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, soOriginalDst)
		if e == nil {
			b := m.Multiaddr
			ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), uint16(b[2])<<8|uint16(b[3]))
			return
		}
		// IPv6: struct sockaddr_in6 (28 bytes) in IPv6MTUInfo (32 bytes).
		var info unix.IPv6MTUInfo
		l := uint32(unsafe.Sizeof(info))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IPV6, soOriginalDst,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&l)), 0)
		if errno != 0 {
			serr = e // the IPv4 error says more for the common case
			return
		}
		sa := info.Addr
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	})
	if cerr != nil {
		return netip.AddrPort{}, fmt.Errorf("capture: original destination: %w", cerr)
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("capture: original destination: %w", serr)
	}
	return ap, nil
}

// Conn is an accepted connection with its original destination (invalid
// when it was not redirected).
type Conn struct {
	net.Conn
	Dst netip.AddrPort
}

// NetConn returns the wrapped connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Listener records each accepted connection's original destination.
type Listener struct{ net.Listener }

var _ net.Listener = Listener{}

// Accept implements net.Listener.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &Conn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if dst, err := OriginalDst(sc); err == nil {
			cc.Dst = dst
		}
	}
	return cc, nil
}

// FromConn unwraps c (NetConn chains: TLS, peeked connections) to the
// capture Conn and returns its original destination.
func FromConn(c net.Conn) (netip.AddrPort, bool) {
	for c != nil {
		if cc, ok := c.(*Conn); ok {
			return cc.Dst, cc.Dst.IsValid()
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return netip.AddrPort{}, false
		}
		c = u.NetConn()
	}
	return netip.AddrPort{}, false
}

type dstKey struct{}

// ConnContext records c's original destination in ctx (chain it into an
// http.Server's ConnContext).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if dst, ok := FromConn(c); ok {
		return context.WithValue(ctx, dstKey{}, dst)
	}
	return ctx
}

// FromContext returns the original destination ConnContext recorded.
func FromContext(ctx context.Context) (netip.AddrPort, bool) {
	dst, ok := ctx.Value(dstKey{}).(netip.AddrPort)
	return dst, ok
}
