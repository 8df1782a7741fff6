package file

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
)

func TestNamespaceAndMTLSAnnotation(t *testing.T) {
	nsDoc := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    weft.dev/mtls-mode: PERMISSIVE\n"
	st, err := Parse("mesh.yaml", []byte(nsDoc+"---\n"+weDoc))
	if err != nil {
		t.Fatal(err)
	}
	ns, ok := st.Namespace("shop")
	if !ok || ns.Annotations[mesh.AnnotationMTLSMode] != "PERMISSIVE" {
		t.Fatalf("Namespace(shop) = %+v, %v", ns, ok)
	}
	if ns, ok := st.Namespace("other"); ok || ns.Annotations != nil {
		t.Fatalf("Namespace(other) = %+v, %v", ns, ok)
	}

	tests := []struct {
		name, data, want string
	}{
		{
			name: "bad namespace mode",
			data: strings.Replace(nsDoc, "PERMISSIVE", "MUTUAL", 1),
			want: `mesh.yaml:6: Namespace default/shop: metadata.annotations[weft.dev/mtls-mode]: "MUTUAL" is not STRICT or PERMISSIVE`,
		},
		{
			name: "bad workload mode",
			data: strings.Replace(weDoc, "  labels:\n", "  annotations:\n    weft.dev/mtls-mode: strict\n  labels:\n", 1),
			want: `WorkloadEntry shop/payment-1: metadata.annotations[weft.dev/mtls-mode]: "strict" is not STRICT or PERMISSIVE`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("mesh.yaml", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want %q", err, tc.want)
			}
		})
	}
}
