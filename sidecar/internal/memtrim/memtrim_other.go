//go:build !linux

package memtrim

// dropExecutable does nothing outside Linux.
func dropExecutable() (Result, error) { return Result{}, nil }
