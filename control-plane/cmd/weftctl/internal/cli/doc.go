// Package cli holds weftctl's cobra commands. Each command parses its flags
// into a typed struct and calls into a package that does the work: launch for
// `up`, debugclient for `proxy-status` and `config-dump`.
package cli
