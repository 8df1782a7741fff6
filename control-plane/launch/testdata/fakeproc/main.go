// Command fakeproc stands in for weft-control-plane, weft-sidecar and an app
// in the launch package's tests; its file name picks the part it plays.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	fs := flag.NewFlagSet("fakeproc", flag.ContinueOnError)
	debug := fs.String("debug-address", "", "")
	admin := fs.String("admin-address", "", "")
	listen := fs.String("listen", "", "")
	exit := fs.Bool("exit", false, "exit at once with status 3")
	fs.Bool("insecure-xds", false, "")
	for _, f := range []string{"registry", "file", "xds-address", "debounce", "log-level", "workload", "namespace", "service-account", "ip", "health-address",
		"mtls-mode", "ca-dir", "join-tokens", "cert-lifetime", "trust-domain", "ca-bundle", "token-file"} {
		fs.String(f, "", "")
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	name := filepath.Base(os.Args[0])
	fmt.Printf("%s starting with %q\n", name, os.Args[1:])
	if *exit {
		fmt.Println("giving up")
		os.Exit(3)
	}
	addr, path := *listen, "/"
	switch name {
	case "weft-control-plane":
		addr, path = *debug, "/healthz"
	case "weft-sidecar":
		addr, path = *admin, "/ready"
	}
	mux := http.NewServeMux()
	mux.HandleFunc(path, func(http.ResponseWriter, *http.Request) {})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		fmt.Println("got SIGTERM")
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && ctx.Err() == nil {
		fmt.Println(err)
		os.Exit(1)
	}
}
