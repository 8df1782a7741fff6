package file

import (
	"strings"
	"testing"
)

const policyBase = `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: a, namespace: shop, labels: {app: a}}
spec: {address: 10.0.0.1, ports: [{name: http, port: 8080}]}
---
`

func TestParsePolicies(t *testing.T) {
	tests := []struct {
		name, doc string
		errs      []string // substrings, one per expected error
		warnings  []string
	}{
		{name: "egress without DNS warns", doc: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: 8080}]}]
`, warnings: []string{"mesh.yaml:9: NetworkPolicy shop/eg: WorkloadEntry shop/a is egress-isolated and no egress rule allows port 53 (DNS)"}},
		{name: "egress with DNS is quiet", doc: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: 53, protocol: UDP}]}]
`},
		{name: "bad NetworkPolicy", doc: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: shop}
spec:
  podSelector: {matchExpressions: [{key: app, operator: Maybe}]}
  policyTypes: [Ingress, Sideways]
  ingress:
    - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}, podSelector: {}}, {}]
      ports: [{port: 90, endPort: 80}, {port: http, endPort: 90}, {protocol: ICMP}]
`, errs: []string{
			"spec.podSelector.matchExpressions[0].operator",
			`spec.policyTypes[1]: "Sideways" is not Ingress or Egress`,
			"spec.ingress[0].from[0]: ipBlock may not be combined",
			"spec.ingress[0].from[1]: must specify",
			"spec.ingress[0].ports[0].endPort: 80 is below port 90",
			"spec.ingress[0].ports[1].endPort: may not be set when port is a name",
			`spec.ingress[0].ports[2].protocol: protocol "ICMP"`,
		}},
		{name: "bad AuthorizationPolicy", doc: `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: shop}
spec:
  action: MAYBE
  rules:
    - from: [{principals: ["a*b"]}, {}]
      to: [{paths: [admin], methods: [get], ports: [0]}]
      when: [{header: X-Bad, values: [v]}]
`, errs: []string{
			`spec.action: "MAYBE"`,
			"spec.rules[0].from[0].principals[0]",
			"spec.rules[0].from[1]: a source needs",
			"spec.rules[0].to[0].ports[0]",
			"spec.rules[0].to[0].methods[0]",
			"spec.rules[0].to[0].paths[0]",
			"spec.rules[0].when[0].header",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Parse("mesh.yaml", []byte(policyBase+tc.doc))
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if strings.Join(st.Authz.Warnings, "\n") != strings.Join(tc.warnings, "\n") && !(len(tc.warnings) == 1 && len(st.Authz.Warnings) == 1 && strings.HasPrefix(st.Authz.Warnings[0], tc.warnings[0])) {
					t.Errorf("warnings = %q, want %q", st.Authz.Warnings, tc.warnings)
				}
				return
			}
			if err == nil {
				t.Fatal("Parse accepted the file")
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("errors lack %q:\n%v", want, err)
				}
			}
		})
	}
}
