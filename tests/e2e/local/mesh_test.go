package local

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"text/template"
)

// meshParams fill meshTemplate.
type meshParams struct {
	// Base is a random 127.a.b prefix: the control plane binds .1, the
	// workloads .10 and up, so parallel runs do not collide.
	Base string
	// Payment2 is "yes" (selected by the payment Service), "no" (running,
	// not selected) or "absent" (its WorkloadEntry is not in the file).
	Payment2 string
	// Extra is appended to the file as more documents.
	Extra string
}

func (p meshParams) IP(n int) string { return fmt.Sprintf("%s.%d", p.Base, n) }

// randomBase picks 127.<100..250>.<0..255>.
func randomBase() string {
	return fmt.Sprintf("127.%d.%d", 100+rand.IntN(151), rand.IntN(256)) //nolint:gosec // G404: address spreading, not security.
}

// meshTemplate is the e2e mesh: client (a sidecar only, the tests' HTTP
// proxy), order-1 calling payment (short name) and inventory (<svc>.<ns>),
// payment-1 and payment-2 (whose selection the tests toggle), inventory-1.
// {{"{{"}} keeps the launcher's own template placeholders.
const meshTemplate = `# e2e mesh, base {{.Base}}
apiVersion: v1
kind: Service
metadata:
  name: order
  namespace: shop
spec:
  selector:
    app: order
  ports:
    - name: http
      port: 8080
      targetPort: http
---
apiVersion: v1
kind: Service
metadata:
  name: payment
  namespace: shop
spec:
  selector:
    app: payment
    serving: "yes"
  ports:
    - name: http
      port: 8080
      targetPort: http
---
apiVersion: v1
kind: Service
metadata:
  name: inventory
  namespace: shop
spec:
  selector:
    app: inventory
  ports:
    - name: http
      port: 8080
      targetPort: http
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: client
  namespace: shop
  labels:
    app: client
spec:
  address: {{.IP 10}}
  serviceAccount: client
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: order-1
  namespace: shop
  labels:
    app: order
  annotations:
    local.weft.dev/command: >-
      {{"{{"}}.BinDir{{"}}"}}/shop --role=order --instance={{"{{"}}.Name{{"}}"}} --listen={{"{{"}}.Address{{"}}"}}:{{"{{"}}.Port "http"{{"}}"}} --proxy={{"{{"}}.ProxyURL{{"}}"}}
spec:
  address: {{.IP 11}}
  serviceAccount: order
  ports:
    - name: http
      port: 8080
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: payment-1
  namespace: shop
  labels:
    app: payment
    serving: "yes"
  annotations:
    local.weft.dev/command: >-
      {{"{{"}}.BinDir{{"}}"}}/shop --role=payment --instance={{"{{"}}.Name{{"}}"}} --listen={{"{{"}}.Address{{"}}"}}:{{"{{"}}.Port "http"{{"}}"}} --proxy={{"{{"}}.ProxyURL{{"}}"}}
spec:
  address: {{.IP 12}}
  serviceAccount: payment
  ports:
    - name: http
      port: 8080
{{- if ne .Payment2 "absent"}}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: payment-2
  namespace: shop
  labels:
    app: payment
    serving: "{{.Payment2}}"
  annotations:
    local.weft.dev/command: >-
      {{"{{"}}.BinDir{{"}}"}}/shop --role=payment --instance={{"{{"}}.Name{{"}}"}} --listen={{"{{"}}.Address{{"}}"}}:{{"{{"}}.Port "http"{{"}}"}} --proxy={{"{{"}}.ProxyURL{{"}}"}}
spec:
  address: {{.IP 13}}
  serviceAccount: payment
  ports:
    - name: http
      port: 8080
{{- end}}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: inventory-1
  namespace: shop
  labels:
    app: inventory
  annotations:
    local.weft.dev/command: >-
      {{"{{"}}.BinDir{{"}}"}}/shop --role=inventory --instance={{"{{"}}.Name{{"}}"}} --listen={{"{{"}}.Address{{"}}"}}:{{"{{"}}.Port "http"{{"}}"}} --proxy={{"{{"}}.ProxyURL{{"}}"}}
spec:
  address: {{.IP 14}}
  serviceAccount: inventory
  ports:
    - name: http
      port: 8080
{{- if .Extra}}
---
{{.Extra}}
{{- end}}
`

var meshTmpl = template.Must(template.New("mesh").Parse(meshTemplate))

func renderMesh(t testing.TB, p meshParams) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := meshTmpl.Execute(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// lineOf is the 1-based line of the first line of data containing marker
// after the line containing after ("" for the start).
func lineOf(t testing.TB, data []byte, after, marker string) int {
	t.Helper()
	lines := strings.Split(string(data), "\n")
	start := 0
	if after != "" {
		start = -1
		for i, l := range lines {
			if strings.Contains(l, after) {
				start = i
				break
			}
		}
		if start < 0 {
			t.Fatalf("no line contains %q", after)
		}
	}
	for i := start; i < len(lines); i++ {
		if strings.Contains(lines[i], marker) {
			return i + 1
		}
	}
	t.Fatalf("no line after %q contains %q", after, marker)
	return 0
}
