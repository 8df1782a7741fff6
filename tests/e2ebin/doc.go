// Package e2ebin gives end-to-end suites the Weft binaries they run: the
// directory named by WEFT_BIN_DIR (as `make e2e` sets it, made absolute), or
// a fresh `go build` of the packages a suite needs into a temporary one.
package e2ebin
