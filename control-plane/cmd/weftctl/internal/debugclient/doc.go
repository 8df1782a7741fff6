// Package debugclient reads the control plane's debug HTTP API
// (GET /debug/proxies, GET /debug/config_dump?proxy=<node id>) for weftctl,
// and renders proxy status as a table. Each call is one bounded HTTP request
// made on the caller's goroutine.
package debugclient
