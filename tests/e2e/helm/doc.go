// Package helm tests the Helm chart (charts/weft) and the image archives
// (make images):
//
//   - TestLintAndTemplate: `helm lint --strict` and `helm template` for the
//     defaults and every charts/weft/ci/*-values.yaml, with checks on the
//     rendered objects (names from api/mesh, security settings, RBAC).
//   - TestSchemaRejections: bad values fail with the message users see.
//   - TestExternalCA: with ci/external-ca-values.yaml, the operator's CA
//     (a root and an issuing intermediate in the Secret the values name)
//     written where the rendered volume mounts it and the control plane
//     run with the rendered args: its xDS certificate verifies against the
//     operator's root through the intermediate, with the values' trust
//     domain, and the trust bundle it publishes is the operator's ca.crt.
//   - TestImages: each bin/images/<name>.tar has the right entrypoint, a
//     non-root user (mesh.ProxyUID) and stays under a size budget.
//   - TestSidecarImageInit (root): the sidecar archive unpacked into a
//     rootfs runs its own `weft-sidecar init` with the injected init
//     container's args and securityContext (chroot, read-only root, the
//     init container's emptyDirs as tmpfs, NET_ADMIN+NET_RAW) in a fresh
//     network namespace, for the nft and legacy backends; the host's
//     iptables-save then finds every capture rule.
//   - TestInstallUpgradeUninstall: on a real API server (tests/kubeharness)
//     `helm install` succeeds, every object passes strict server-side
//     validation, the injector runs as a process with exactly the args the
//     chart rendered (addresses and mount paths mapped to the test's own,
//     the webhook called at a 127.x URL through the testing-only values
//     webhook.url/webhook.certIPs) and injects a pod; `helm upgrade` with
//     changed values keeps injection working with a matching caBundle;
//     `helm uninstall` leaves only the CRDs.
//
// helm comes from $WEFT_HELM or ./.cache/tools/bin/helm (make helm-tools);
// image archives from $WEFT_IMAGES_DIR or ./bin/images (make images). Missing
// tools skip the test unless WEFT_REQUIRE_K8S=1, which makes them failures.
package helm
