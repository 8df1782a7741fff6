package authz

import (
	"errors"
	"strings"
)

// Errors of NormalizePath. A request whose path fails normalization is
// answered 400 and never matched.
var (
	// ErrEncodedSeparator: the path has %2F or %5C (an encoded '/' or '\'),
	// which could hide a segment from a rule.
	ErrEncodedSeparator = errors.New("authz: path has an encoded / or \\")
	// ErrBadEscape: a '%' not followed by two hex digits.
	ErrBadEscape = errors.New("authz: path has a malformed percent escape")
	// ErrNotAbsolute: the path does not start with '/'.
	ErrNotAbsolute = errors.New("authz: path is not absolute")
)

// NormalizePath returns the normalized form of an escaped request path (no
// query): percent-encoded unreserved characters (RFC 3986 2.3) decoded and
// other escapes upper-cased, runs of '/' merged, and "." and ".." segments
// removed (RFC 3986 5.2.4; ".." never climbs above the root). An encoded
// '/' or '\' is an error (ErrEncodedSeparator). The empty path is "/".
// NormalizePath is idempotent and does not allocate when p is already
// normal.
func NormalizePath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if p[0] != '/' {
		return "", ErrNotAbsolute
	}
	if isNormal(p) {
		return p, nil
	}
	// 1. Escapes.
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", ErrBadEscape
		}
		v := unhex(p[i+1])<<4 | unhex(p[i+2])
		i += 2
		switch {
		case v == '/' || v == '\\':
			return "", ErrEncodedSeparator
		case isUnreserved(v):
			b.WriteByte(v)
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[v>>4])
			b.WriteByte(upperHex[v&15])
		}
	}
	// 2. Segments: merge slashes, remove dot segments.
	s := b.String()
	segs := strings.Split(s[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case "":
			if last {
				trailing = true
			}
		case ".":
			if last {
				trailing = true
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				trailing = true
			}
		default:
			out = append(out, seg)
			trailing = false
		}
	}
	if len(out) == 0 {
		return "/", nil
	}
	r := "/" + strings.Join(out, "/")
	if trailing {
		r += "/"
	}
	return r, nil
}

// isNormal reports whether p (starting with '/') needs no change: no '%',
// no empty segment except a trailing one, no dot segment.
func isNormal(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%':
			return false
		case '/':
			if i+1 < len(p) && p[i+1] == '/' {
				return false
			}
			if i+1 < len(p) && p[i+1] == '.' {
				rest := p[i+1:]
				if rest == "." || rest == ".." || strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
					return false
				}
			}
		}
	}
	return true
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
