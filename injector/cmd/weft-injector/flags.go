package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/injector/inject"
	"github.com/weftmesh/weft/injector/webhook"
)

// templateFlags registers the mesh and template flags both subcommands
// take; call the returned function after fs.Parse.
func templateFlags(fs *flag.FlagSet, mc *meshconfig.Config, tpl *inject.Template) (finish func()) {
	*mc = meshconfig.Default()
	*tpl = inject.DefaultTemplate()
	fs.StringVar(&mc.TrustDomain, "trust-domain", mc.TrustDomain, "mesh trust domain")
	fs.StringVar(&tpl.ProxyImage, "proxy-image", tpl.ProxyImage, "image of weft-sidecar (init step and proxy)")
	fs.Func("image-pull-policy", "Always, IfNotPresent or Never (default "+string(tpl.ImagePullPolicy)+")", func(s string) error {
		tpl.ImagePullPolicy = corev1.PullPolicy(s)
		return nil
	})
	fs.StringVar(&tpl.XDSAddress, "xds-address", tpl.XDSAddress, "control plane xDS/CA address the proxies dial, host:port")
	fs.StringVar(&tpl.TokenAudience, "token-audience", tpl.TokenAudience, "audience of the projected ServiceAccount token")
	fs.Int64Var(&tpl.TokenExpirationSeconds, "token-expiration-seconds", tpl.TokenExpirationSeconds, "lifetime of the projected token")
	fs.StringVar(&tpl.TrustBundleConfigMap, "trust-bundle-configmap", tpl.TrustBundleConfigMap, "ConfigMap holding the trust bundle in each namespace")
	fs.StringVar(&tpl.ProxyCPU, "proxy-cpu", tpl.ProxyCPU, "proxy CPU request")
	fs.StringVar(&tpl.ProxyMemory, "proxy-memory", tpl.ProxyMemory, "proxy memory request")
	fs.StringVar(&tpl.ProxyCPULimit, "proxy-cpu-limit", tpl.ProxyCPULimit, "proxy CPU limit (empty: none)")
	fs.StringVar(&tpl.ProxyMemoryLimit, "proxy-memory-limit", tpl.ProxyMemoryLimit, "proxy memory limit (empty: none)")
	native := fs.Bool("native-sidecar", !tpl.LegacySidecar, "inject the proxy as a native sidecar (restartable init container); false: a regular container")
	fs.StringVar(&tpl.LogLevel, "proxy-log-level", tpl.LogLevel, "log level of the injected proxy")
	fs.StringVar(&tpl.IncludeInboundPorts, "include-inbound-ports", tpl.IncludeInboundPorts, "inbound ports to capture (* = all)")
	fs.StringVar(&tpl.ExcludeInboundPorts, "exclude-inbound-ports", tpl.ExcludeInboundPorts, "inbound ports never captured")
	fs.StringVar(&tpl.IncludeOutboundPorts, "include-outbound-ports", tpl.IncludeOutboundPorts, "outbound ports to capture (* = all)")
	fs.StringVar(&tpl.ExcludeOutboundPorts, "exclude-outbound-ports", tpl.ExcludeOutboundPorts, "outbound ports never captured")
	fs.StringVar(&tpl.ExcludeOutboundCIDRs, "exclude-outbound-cidrs", tpl.ExcludeOutboundCIDRs, "outbound CIDRs never captured")
	fs.BoolVar(&mc.DNSCapture, "dns-capture", mc.DNSCapture, "send the app's DNS to the sidecar's DNS proxy (pods override with the "+mesh.AnnotationDNSCapture+" annotation)")
	return func() { tpl.LegacySidecar = !*native }
}

type serveConfig struct {
	webhook  webhook.Config
	logLevel string
}

func parseServeFlags(args []string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("weft-injector serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.webhook.ListenAddress, "listen", webhook.DefaultListenAddress(), "HTTPS listen address")
	fs.StringVar(&c.webhook.CertFile, "tls-cert-file", "", "serving certificate, PEM (required; re-read when it changes)")
	fs.StringVar(&c.webhook.KeyFile, "tls-key-file", "", "serving key, PEM (required)")
	fs.DurationVar(&c.webhook.ShutdownTimeout, "shutdown-timeout", webhook.DefaultShutdownTimeout, "graceful shutdown bound")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	finish := templateFlags(fs, &c.webhook.Mesh, &c.webhook.Template)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	finish()
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.webhook.CertFile == "" || c.webhook.KeyFile == "" {
		return c, fmt.Errorf("--tls-cert-file and --tls-key-file are required")
	}
	logger, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return c, err
	}
	c.webhook.Logger = logger
	return c, nil
}

func runServe(ctx context.Context, c serveConfig) error {
	return webhook.Run(ctx, c.webhook)
}

type injectConfig struct {
	file string
	mesh meshconfig.Config
	tpl  inject.Template
}

func parseInjectFlags(args []string, stderr io.Writer) (injectConfig, error) {
	var c injectConfig
	fs := flag.NewFlagSet("weft-injector inject", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.file, "f", "", "manifest to inject (- = stdin; required)")
	finish := templateFlags(fs, &c.mesh, &c.tpl)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	finish()
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.file == "" {
		return c, fmt.Errorf("-f is required")
	}
	return c, nil
}

func runInject(c injectConfig, stdin io.Reader, stdout io.Writer) error {
	in := stdin
	if c.file != "-" {
		f, err := os.Open(c.file)
		if err != nil {
			return fmt.Errorf("inject: %w", err)
		}
		defer func() { _ = f.Close() }()
		in = f
	}
	return inject.Manifest(in, stdout, c.mesh, c.tpl)
}
