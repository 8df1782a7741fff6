package authz

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"", "/", nil},
		{"/", "/", nil},
		{"/admin", "/admin", nil},
		{"/admin/../admin", "/admin", nil},
		{"//admin", "/admin", nil},
		{"/%61dmin", "/admin", nil},
		{"/%2e%2e/admin", "/admin", nil},
		{"/a/%2E/b", "/a/b", nil},
		{"/admin%2F", "", ErrEncodedSeparator},
		{"/admin%2f", "", ErrEncodedSeparator},
		{"/a%5Cb", "", ErrEncodedSeparator},
		{"/a%5cb", "", ErrEncodedSeparator},
		{"/a%", "", ErrBadEscape},
		{"/a%4", "", ErrBadEscape},
		{"/a%zz", "", ErrBadEscape},
		{"admin", "", ErrNotAbsolute},
		{"/a/b/", "/a/b/", nil},
		{"/a/b/.", "/a/b/", nil},
		{"/a/b/..", "/a/", nil},
		{"/a/./b/../../c", "/c", nil},
		{"/../../..", "/", nil},
		{"/..", "/", nil},
		{"/a//b///c", "/a/b/c", nil},
		{"/a%20b", "/a%20b", nil},
		{"/a%3fb", "/a%3Fb", nil},
		{"/%7Euser", "/~user", nil},
		{"/a\\..\\b", "/a\\..\\b", nil},
		{"/.hidden", "/.hidden", nil},
		{"/a/..b", "/a/..b", nil},
		{"/ADMIN", "/ADMIN", nil},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizePath(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("NormalizePath(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			if got != tc.want {
				t.Errorf("NormalizePath(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNormalizePathNoAllocWhenNormal(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		if _, err := NormalizePath("/orders/123/items"); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("allocations = %v, want 0", n)
	}
}

// FuzzNormalizePath checks the normalizer's invariants: the result is
// absolute, has no empty or dot segment, no encoded unreserved character or
// separator, and normalizing it again changes nothing. Seeds: testdata/fuzz.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/admin/../admin", "//admin", "/%61dmin", "/admin%2F", "/a/./b/../c/", "/%2e%2E/x", "/a%20b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizePath(in)
		if err != nil {
			if out != "" {
				t.Fatalf("error %v with output %q", err, out)
			}
			return
		}
		if out == "" || out[0] != '/' {
			t.Fatalf("NormalizePath(%q) = %q: not absolute", in, out)
		}
		if strings.Contains(out, "//") {
			t.Fatalf("NormalizePath(%q) = %q: empty segment", in, out)
		}
		for _, seg := range strings.Split(out[1:], "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q: dot segment", in, out)
			}
		}
		for i := 0; i+2 < len(out); i++ {
			if out[i] == '%' {
				v := unhex(out[i+1])<<4 | unhex(out[i+2])
				if isUnreserved(v) || v == '/' || v == '\\' {
					t.Fatalf("NormalizePath(%q) = %q: escape %s left", in, out, out[i:i+3])
				}
			}
		}
		again, err := NormalizePath(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
	})
}
