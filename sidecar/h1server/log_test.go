package h1server

import "log"

type funcWriter func(string)

func (f funcWriter) Write(p []byte) (int, error) { f(string(p)); return len(p), nil }

func newLogger(f func(string)) *log.Logger { return log.New(funcWriter(f), "", 0) }
