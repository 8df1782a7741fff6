package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
)

func TestInjectSubcommand(t *testing.T) {
	in := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: x}]\n"
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"inject", "-f", "-", "--proxy-image=img:1", "--native-sidecar=false", "--trust-domain=example.org"}, strings.NewReader(in), &out, &errb)
	if err != nil {
		t.Fatalf("run: %v (%s)", err, errb.String())
	}
	s := out.String()
	for _, want := range []string{"image: img:1", "name: " + mesh.ContainerSidecar, `"native":false`, "value: example.org"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"serve without certs", []string{"serve"}, "--tls-cert-file and --tls-key-file are required"},
		{"inject without -f", []string{"inject"}, "-f is required"},
		{"bad template", []string{"inject", "-f", "-", "--proxy-cpu=lots"}, "proxyCPU"},
		{"stray args", []string{"serve", "x"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errb bytes.Buffer
			err := run(t.Context(), tc.args, strings.NewReader("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b}]}\n"), &bytes.Buffer{}, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
