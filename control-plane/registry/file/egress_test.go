package file

import (
	"strings"
	"testing"
)

func TestExternalServiceChecks(t *testing.T) {
	const head = "apiVersion: weft.dev/v1alpha1\nkind: ExternalService\nmetadata: {name: x, namespace: shop}\n"
	for _, tc := range []struct {
		name, doc, wantErr string
	}{
		{"ok", head + "spec: {hosts: [a.example, '*.b.example'], ports: [{number: 443, protocol: TLS}], allow: [{from: [{namespaces: [shop]}]}]}", ""},
		{"no hosts", head + "spec: {hosts: [], ports: [{number: 443, protocol: TLS}]}", "spec.hosts: required"},
		{"bad host", head + "spec: {hosts: ['*.*.example'], ports: [{number: 443, protocol: TLS}]}", "not a DNS name"},
		{"bad protocol", head + "spec: {hosts: [a.example], ports: [{number: 443, protocol: UDP}]}", "is not HTTP, TLS or TCP"},
		{"originate on TLS", head + "spec: {hosts: [a.example], ports: [{number: 443, protocol: TLS, originateTLS: true}]}", "only for HTTP ports"},
		{"static without endpoints", head + "spec: {hosts: [a.example], resolution: STATIC, ports: [{number: 443, protocol: TLS}]}", "required with resolution STATIC"},
		{"bad cidr", head + "spec: {hosts: [a.example], addresses: [10.0.0.0/40], ports: [{number: 5432, protocol: TCP}]}", "not a CIDR"},
		{"rule port not declared", head + "spec: {hosts: [a.example], ports: [{number: 443, protocol: TLS}], allow: [{from: [{namespaces: [shop]}], ports: [80]}]}", "is not one of spec.ports"},
		{"bad service account", head + "spec: {hosts: [a.example], ports: [{number: 443, protocol: TLS}], allow: [{from: [{serviceAccounts: [order]}]}]}", "is not <namespace>/<name>"},
		{"empty source", head + "spec: {hosts: [a.example], ports: [{number: 443, protocol: TLS}], allow: [{from: [{}]}]}", "names no source"},
		{"claimed twice", head + "spec: {hosts: [a.example], ports: [{number: 443, protocol: TLS}]}\n---\n" +
			strings.Replace(head, "name: x", "name: other", 1) + "spec: {hosts: [A.example], ports: [{number: 443, protocol: TLS}]}", "already claimed by ExternalService shop/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Parse("m.yaml", []byte(tc.doc))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if len(st.Egress) != 1 || len(st.Egress[0].Allow) != 1 {
					t.Errorf("Egress = %+v", st.Egress)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
