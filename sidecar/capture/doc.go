// Package capture is transparent traffic capture for a sidecar in a pod:
// the iptables rules `weft-sidecar init` writes into the pod's network
// namespace, and the original destination (SO_ORIGINAL_DST) of a
// connection those rules redirected to a listener.
//
// Rules (Render, a pure function, golden-tested) are Istio's shape, in the
// nat table, written as iptables-restore input:
//
//	PREROUTING -p tcp -> WEFT_INBOUND: excluded inbound ports (health
//	    15020, admin 15000, the inbound port itself, --exclude-inbound-ports)
//	    RETURN; every other port (or only --include-inbound-ports) ->
//	    WEFT_IN_REDIRECT: REDIRECT to the inbound port 15006.
//	OUTPUT -p tcp -> WEFT_OUTPUT:
//	    the app over lo (app -> own pod IP) -> RETURN (as Istio; unlike
//	    Istio the proxy's own traffic to its pod IP is not sent back to
//	    the inbound: it is the tunnel or the inbound's delivery to the
//	    app at <pod ip>:<port>, which would loop);
//	    the proxy's own traffic (uid 1337) -> RETURN;
//	    127.0.0.1 -> RETURN; excluded CIDRs and ports -> RETURN;
//	    included ports (or all) -> WEFT_REDIRECT: REDIRECT to 15001.
//
// Apply picks the backend as Istio does (the one that already has rules,
// else iptables-nft, else legacy, else plain iptables-restore), reads the
// current nat table, and restores with --noflush: declaring the WEFT_
// chains flushes them, and the jumps from PREROUTING/OUTPUT are added only
// when absent, so a re-run is idempotent.
//
// OriginalDst reads the pre-NAT destination of an accepted TCP connection
// (IPv4 SO_ORIGINAL_DST, IPv6 IP6T_SO_ORIGINAL_DST). Listener wraps a
// listener so each accepted Conn carries it; ConnContext/FromContext carry
// it to HTTP handlers. Nothing here owns a goroutine.
package capture
