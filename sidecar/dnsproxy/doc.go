// Package dnsproxy is the sidecar's DNS proxy (issue 9, item 3): it
// answers A and AAAA queries for mesh service names from the sidecar's own
// xDS configuration and forwards every other query, unchanged, to the
// resolvers of /etc/resolv.conf. Apps then resolve mesh services without a
// round trip to the cluster DNS, and get the same virtual IP the outbound
// listener routes by (the ClusterIP:port virtual host).
//
// # Flow
//
//	app --udp/tcp :53--> (iptables REDIRECT, `weft-sidecar init --capture-dns`;
//	                      the proxy's own uid is excluded)
//	    --> 127.0.0.1:15053 (Server: one UDP socket, one TCP listener)
//	    --> Server.Answer(query)
//	          parse the header and the single question (dnsmessage.Parser);
//	          A/AAAA of a name in the Table: answer here (authoritative,
//	          TTL 30 s; NODATA when the service has no address of that family);
//	          anything else (other types, classes, opcodes, several
//	          questions, names not in the Table): forward the query bytes
//	          as they are to each upstream in turn (UDP for UDP, TCP for
//	          TCP) and relay the first reply whose id and question match.
//
// Malformed input never reaches a forwarder: a message whose header does
// not parse is dropped, one whose question does not parse gets FORMERR;
// replies are never answered. FuzzAnswer feeds arbitrary bytes to this path.
//
// # The table
//
// Table is immutable and swapped atomically (SetTable) when the sidecar
// accepts a new xDS snapshot; a lookup takes no lock. Services come from
// the outbound service clusters' metadata (filter_metadata["weft"]:
// mesh.MetadataServiceHost and mesh.MetadataServiceAddresses, see
// ServiceOf). A service <svc>.<ns>.svc.<cluster domain> answers
// under the names an app may ask for: the FQDN, <svc>.<ns>.svc,
// <svc>.<ns>, and <svc> alone for a service in the proxy's own namespace
// — the pod's search path (<ns>.svc.<domain> svc.<domain> <domain>) turns
// each of them into the FQDN, and a resolver that sends the name as it is
// (ndots reached) still gets the answer. Names are case-insensitive.
// Headless services (no address) are not in the table: they are forwarded.
// The upstream resolvers are read from resolv.conf once, at start (the
// kubelet writes a pod's resolv.conf before its containers start).
//
// # Why golang.org/x/net/dns/dnsmessage
//
// It is already in the module graph (no new dependency), it parses
// without allocating per record and rejects truncated or looping
// compression pointers, and a proxy only needs the header, one question
// and a small answer; forwarded messages are relayed byte for byte, never
// re-encoded. github.com/miekg/dns brings a full server, zone parser and
// every record type, none of which this needs.
//
// # Goroutines
//
// Serve owns everything it starts: the UDP read loop, the TCP accept loop,
// one goroutine per TCP connection and at most MaxInFlight UDP queries at a
// time; it returns after all of them have ended once ctx is done.
package dnsproxy
