package file

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/weftmesh/weft/control-plane/model"
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

func TestExternalNameService(t *testing.T) {
	const svc = "apiVersion: v1\nkind: Service\nmetadata: {name: legacy, namespace: shop}\n"
	for _, tc := range []struct {
		name, doc, wantErr string
		want               []model.ExternalService
	}{
		{
			name: "http, tls by name, tcp by appProtocol, udp left out",
			doc: svc + "spec: {type: ExternalName, externalName: Legacy.Example., ports: [{name: http, port: 80}, " +
				"{name: tls-api, port: 443}, {name: db, port: 5432, appProtocol: tcp, targetPort: 15432}, {name: dns, port: 53, protocol: UDP}]}",
			want: []model.ExternalService{{
				Name: "legacy", Namespace: "shop", Hosts: []string{"legacy.example"}, ExternalName: "legacy.example", Resolution: "DNS",
				Ports: []model.ExternalPort{
					{Number: 80, Name: "http", Protocol: "HTTP"},
					{Number: 443, Name: "tls-api", Protocol: "TLS"},
					{Number: 5432, Name: "db", Protocol: "TCP", TargetPort: 15432},
				},
				Allow: []model.EgressRule{{Namespaces: []string{"shop"}}},
			}},
		},
		{
			name: "no ports: nothing to reach, not an error",
			doc:  svc + "spec: {type: ExternalName, externalName: legacy.example}",
		},
		{
			name: "external name claimed by an ExternalService: mesh names only",
			doc: svc + "spec: {type: ExternalName, externalName: api.example, ports: [{name: https, port: 443}]}\n---\n" +
				"apiVersion: weft.dev/v1alpha1\nkind: ExternalService\nmetadata: {name: api, namespace: other}\n" +
				"spec: {hosts: [api.example], ports: [{number: 443, protocol: TLS}]}",
			want: []model.ExternalService{
				{Name: "api", Namespace: "other", Hosts: []string{"api.example"}, Resolution: "DNS", Ports: []model.ExternalPort{{Number: 443, Protocol: "TLS"}}, Allow: []model.EgressRule{}},
				{
					Name: "legacy", Namespace: "shop", ExternalName: "api.example", Resolution: "DNS",
					Ports: []model.ExternalPort{{Number: 443, Name: "https", Protocol: "TLS"}},
					Allow: []model.EgressRule{{Namespaces: []string{"shop"}}},
				},
			},
		},
		{name: "no external name", doc: svc + "spec: {type: ExternalName, ports: [{port: 80}]}", wantErr: "spec.externalName: required"},
		{name: "wildcard", doc: svc + "spec: {type: ExternalName, externalName: '*.example', ports: [{port: 80}]}", wantErr: "a wildcard is not a name"},
		{name: "not a name", doc: svc + "spec: {type: ExternalName, externalName: 'a..example', ports: [{port: 80}]}", wantErr: "not a DNS name"},
		{name: "cluster IP", doc: svc + "spec: {type: ExternalName, externalName: a.example, clusterIP: 10.0.0.1, ports: [{port: 80}]}", wantErr: "must be empty for type ExternalName"},
		{name: "other types still refused", doc: svc + "spec: {type: Unknown, ports: [{port: 80}]}", wantErr: `type "Unknown" is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Parse("m.yaml", []byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(st.Services) != 0 {
				t.Errorf("an ExternalName Service among the mesh Services: %+v", st.Services)
			}
			if diff := cmp.Diff(tc.want, st.Egress, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("external destinations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEgressTrafficPolicy(t *testing.T) {
	const objs = "apiVersion: v1\nkind: Service\nmetadata: {name: legacy, namespace: shop}\n" +
		"spec: {type: ExternalName, externalName: legacy.example, ports: [{name: http, port: 80}]}\n---\n" +
		"apiVersion: weft.dev/v1alpha1\nkind: ExternalService\nmetadata: {name: api, namespace: shop}\n" +
		"spec: {hosts: [api.example], ports: [{number: 80, protocol: HTTP}]}\n---\n"
	const tp = "apiVersion: weft.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: %s, namespace: shop}\nspec: {targetRef: %s, timeout: 2s}\n"
	for _, tc := range []struct {
		name, doc, wantErr string
		want               map[string]bool // destination name -> has a policy
	}{
		{
			name: "ExternalService and ExternalName Service",
			doc: objs + fmt.Sprintf(tp, "a", "{group: weft.dev, kind: ExternalService, name: api}") + "---\n" +
				fmt.Sprintf(tp, "b", "{kind: Service, name: legacy}"),
			want: map[string]bool{"api": true, "legacy": true},
		},
		{name: "no such ExternalService", doc: objs + fmt.Sprintf(tp, "a", "{group: weft.dev, kind: ExternalService, name: nope}"), wantErr: "no ExternalService shop/nope in the file"},
		{name: "ExternalService kind without its group", doc: objs + fmt.Sprintf(tp, "a", "{kind: ExternalService, name: api}"), wantErr: "is not supported"},
		{
			name: "two for one ExternalService",
			doc: objs + fmt.Sprintf(tp, "a", "{group: weft.dev, kind: ExternalService, name: api}") + "---\n" +
				fmt.Sprintf(tp, "b", "{group: weft.dev, kind: ExternalService, name: api}"),
			wantErr: "ExternalService shop/api already has TrafficPolicy a",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Parse("m.yaml", []byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(st.Policies) != 0 {
				t.Errorf("policies of external destinations among the mesh Services': %+v", st.Policies)
			}
			for _, es := range st.Egress {
				if got := es.Policy != nil; got != tc.want[es.Name] {
					t.Errorf("%s: policy %v, want %v", es.Name, got, tc.want[es.Name])
				}
				if es.Policy != nil && (es.Policy.Timeout == nil || *es.Policy.Timeout != 2*time.Second) {
					t.Errorf("%s: timeout %v, want 2s", es.Name, es.Policy.Timeout)
				}
			}
		})
	}
}
