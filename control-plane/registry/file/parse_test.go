package file

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftmesh/weft/control-plane/model"
)

func TestParseGood(t *testing.T) {
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Parse("good.yaml", data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := model.NewState([]model.Service{
		{Name: "legacy", Namespace: "shop", Ports: []model.ServicePort{{
			Port: 80, Protocol: model.ProtocolTCP, TargetPort: model.TargetPort{Number: 80},
			Endpoints: []model.Endpoint{
				{Address: "127.0.0.50", Port: 8000, Namespace: "shop", Ready: true, Serving: true, Weight: 1},
				{Address: "127.0.0.51", Port: 8000, Namespace: "shop", Serving: true, Terminating: true, Weight: 1},
			},
		}}},
		{Name: "payment", Namespace: "shop", ClusterIP: "10.96.0.10", Selector: map[string]string{"app": "payment"}, Ports: []model.ServicePort{
			{Name: "http", Port: 8080, Protocol: model.ProtocolTCP, TargetPort: model.TargetPort{Name: "http"}, Endpoints: []model.Endpoint{{
				Address: "127.0.0.2", Port: 8081, Workload: "payment-1", Namespace: "shop", ServiceAccount: "payment",
				Ready: true, Serving: true, Locality: model.Locality{Region: "eu", Zone: "a"}, Weight: 1,
			}}},
			{Name: "admin", Port: 9090, Protocol: model.ProtocolTCP, TargetPort: model.TargetPort{Number: 9091}, Endpoints: []model.Endpoint{{
				Address: "127.0.0.2", Port: 9091, Workload: "payment-1", Namespace: "shop", ServiceAccount: "payment",
				Ready: true, Serving: true, Locality: model.Locality{Region: "eu", Zone: "a"}, Weight: 1,
			}}},
		}},
	}, []model.Workload{
		{Name: "frontend", Namespace: "shop", ServiceAccount: "default", Address: "127.0.0.3", Labels: map[string]string{"app": "frontend"}, Weight: 1},
		{
			Name: "payment-1", Namespace: "shop", ServiceAccount: "payment", Address: "127.0.0.2",
			Labels:       map[string]string{"app": "payment"},
			Annotations:  map[string]string{"local.weft.dev/command": "shop-demo --role=payment"},
			Ports:        []model.WorkloadPort{{Name: "http", Port: 8081, Protocol: model.ProtocolTCP}},
			Locality:     model.Locality{Region: "eu", Zone: "a"},
			Weight:       1,
			InboundPorts: []uint32{8081, 9091},
		},
	})
	if diff := cmp.Diff(want, st); diff != "" {
		t.Fatalf("Parse state (-want +got):\n%s", diff)
	}
}

const svcDoc = `apiVersion: v1
kind: Service
metadata:
  name: payment
  namespace: shop
spec:
  selector:
    app: payment
  ports:
  - name: http
    port: 8080
`

const weDoc = `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: payment-1
  namespace: shop
  labels:
    app: payment
spec:
  address: 127.0.0.2
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		// want is a substring of one error, in Error() form.
		want string
	}{
		{
			name: "duplicate port",
			data: svcDoc + "  - name: grpc\n    port: 8080\n---\n" + weDoc,
			want: "mesh.yaml:13: Service shop/payment: spec.ports[1].port: duplicate port 8080",
		},
		{
			name: "unknown field",
			data: weDoc + "  portz: 127.0.0.9\n---\n" + svcDoc,
			want: "mesh.yaml:10: WorkloadEntry shop/payment-1: spec.portz: unknown field",
		},
		{
			name: "unknown kind",
			data: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n",
			want: `mesh.yaml:2: kind: unknown kind "Pod" in apiVersion "v1"`,
		},
		{
			name: "unknown apiVersion",
			data: "apiVersion: weft.dev/v9\nkind: WorkloadEntry\nmetadata:\n  name: x\n",
			want: `mesh.yaml:2: kind: unknown kind "WorkloadEntry" in apiVersion "weft.dev/v9"`,
		},
		{
			name: "selector matches nothing",
			data: svcDoc,
			want: "mesh.yaml:7: Service shop/payment: spec.selector: selects no WorkloadEntry in namespace shop",
		},
		{
			name: "selector in another namespace",
			data: svcDoc + "---\n" + strings.Replace(weDoc, "namespace: shop", "namespace: other", 1),
			want: "Service shop/payment: spec.selector: selects no WorkloadEntry in namespace shop",
		},
		{
			name: "same address",
			data: svcDoc + "---\n" + weDoc + "---\n" + strings.Replace(weDoc, "payment-1", "payment-2", 1),
			want: "mesh.yaml:31: WorkloadEntry shop/payment-2: spec.address: address 127.0.0.2 is already used by WorkloadEntry shop/payment-1 (line 21)",
		},
		{
			name: "reserved workload port",
			data: svcDoc + "---\n" + weDoc + "  ports:\n  - name: http\n    port: 15001\n",
			want: "mesh.yaml:24: WorkloadEntry shop/payment-1: spec.ports[0].port: port 15001 is reserved for the sidecar (15000-15020)",
		},
		{
			name: "reserved target port",
			data: svcDoc + "    targetPort: 15006\n---\n" + weDoc,
			want: "mesh.yaml:12: Service shop/payment: spec.ports[0].targetPort: port 15006 is reserved",
		},
		{
			name: "duplicate object",
			data: svcDoc + "---\n" + weDoc + "---\n" + weDoc,
			want: "mesh.yaml:26: WorkloadEntry shop/payment-1: metadata.name: duplicate WorkloadEntry shop/payment-1 (first declared on line 16)",
		},
		{
			name: "missing address",
			data: strings.Replace(weDoc, "  address: 127.0.0.2\n", "  serviceAccount: x\n", 1),
			want: "mesh.yaml:8: WorkloadEntry shop/payment-1: spec.address: required",
		},
		{
			name: "missing name",
			data: strings.Replace(weDoc, "  name: payment-1\n", "", 1),
			want: "WorkloadEntry shop/: metadata.name: required",
		},
		{
			name: "named target port missing",
			data: svcDoc + "    targetPort: grpc\n---\n" + weDoc,
			want: `mesh.yaml:12: Service shop/payment: spec.ports[0].targetPort: WorkloadEntry shop/payment-1 has no port named "grpc"`,
		},
		{
			name: "wrong type",
			data: svcDoc + "---\n" + strings.Replace(weDoc, "127.0.0.2", "127.0.0.2\n  weight: heavy", 1),
			want: "mesh.yaml:22: WorkloadEntry shop/payment-1: spec.weight: expected uint32, got string",
		},
		{
			name: "yaml syntax",
			data: svcDoc + "---\n" + "apiVersion: v1\nkind: [\n",
			want: "mesh.yaml:14: invalid YAML",
		},
		{
			name: "duplicate key",
			data: weDoc + "  address: 127.0.0.3\n",
			want: "mesh.yaml:10: invalid YAML",
		},
		{
			name: "slice for unknown service",
			data: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s\n  labels:\n    kubernetes.io/service-name: nope\naddressType: IPv4\nendpoints:\n- addresses: [10.0.0.1]\n",
			want: "mesh.yaml:6: EndpointSlice default/s: metadata.labels[kubernetes.io/service-name]: no Service default/nope in the file",
		},
		{
			name: "two unnamed ports",
			data: strings.Replace(svcDoc, "  - name: http\n", "  - port: 81\n  - ", 1) + "---\n" + weDoc,
			want: "spec.ports[0].name: required when a Service has more than one port",
		},
		{
			name: "bad clusterIP",
			data: strings.Replace(svcDoc, "  ports:\n", "  clusterIP: nope\n  ports:\n", 1) + "---\n" + weDoc,
			want: `mesh.yaml:9: Service shop/payment: spec.clusterIP: "nope" is not an IP address`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("mesh.yaml", []byte(tc.data))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error:\n%v\nwant one containing %q", err, tc.want)
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.File != "mesh.yaml" || fe.Line == 0 {
				t.Fatalf("errors.As(*Error) = %+v, want file and line", fe)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	st, err := Parse("e.yaml", []byte("# nothing\n---\n---\n"))
	if err != nil || len(st.Services)+len(st.Workloads) != 0 {
		t.Fatalf("Parse(empty) = %+v, %v", st, err)
	}
}
