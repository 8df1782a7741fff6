package mesh

import (
	"fmt"
	"strings"
)

// SPIFFEID returns spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>,
// the identity of every workload in Weft.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// ParseSPIFFEPath splits the path of a Weft SPIFFE ID (/ns/<ns>/sa/<sa>)
// into namespace and service account. Callers validate the whole ID with
// go-spiffe's spiffeid package first; this only reads Weft's path layout.
func ParseSPIFFEPath(path string) (namespace, serviceAccount string, err error) {
	parts := strings.Split(path, "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "ns" || parts[3] != "sa" || parts[2] == "" || parts[4] == "" {
		return "", "", fmt.Errorf("mesh: SPIFFE path %q is not /ns/<namespace>/sa/<serviceaccount>", path)
	}
	return parts[2], parts[4], nil
}
