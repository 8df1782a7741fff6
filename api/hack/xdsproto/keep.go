package main

// keep lists the messages of the trimmed set: every message the sidecar or
// api/authz reads, and every message a field they read refers to. A message
// left out drops the fields of its type from the messages that refer to it
// (the data stays on the wire as unknown fields). A nested message needs its
// parent listed.
func keep() []string {
	return []string{
		// ADS.
		"envoy.service.discovery.v3.DiscoveryRequest",
		"envoy.service.discovery.v3.DiscoveryResponse",
		"envoy.config.core.v3.Node",

		// Shared building blocks.
		"envoy.config.core.v3.Address",
		"envoy.config.core.v3.SocketAddress",
		"envoy.config.core.v3.Metadata",
		"envoy.config.core.v3.TransportSocket",
		"envoy.config.core.v3.ConfigSource",
		"envoy.config.core.v3.AggregatedConfigSource",
		"envoy.config.core.v3.DataSource",
		"envoy.config.core.v3.Locality",
		"envoy.config.core.v3.CidrRange",
		"envoy.config.core.v3.TypedExtensionConfig",
		"envoy.config.core.v3.RuntimeUInt32",
		"envoy.config.core.v3.RuntimeFractionalPercent",
		"envoy.type.v3.FractionalPercent",
		"envoy.type.v3.Int64Range",
		"envoy.type.v3.Int32Range",
		"envoy.type.v3.Percent",
		"envoy.config.core.v3.SubstitutionFormatString",
		"envoy.type.matcher.v3.StringMatcher",
		"envoy.type.matcher.v3.RegexMatcher",
		"envoy.type.matcher.v3.PathMatcher",

		// LDS.
		"envoy.config.listener.v3.Listener",
		"envoy.config.listener.v3.FilterChain",
		"envoy.config.listener.v3.FilterChainMatch",
		"envoy.config.listener.v3.Filter",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing",
		"envoy.extensions.filters.network.http_connection_manager.v3.Rds",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
		"envoy.extensions.filters.http.router.v3.Router",
		"envoy.extensions.filters.http.rbac.v3.RBAC",
		"envoy.config.rbac.v3.RBAC",
		"envoy.config.rbac.v3.Policy",
		"envoy.config.rbac.v3.Permission",
		"envoy.config.rbac.v3.Permission.Set",
		"envoy.config.rbac.v3.Principal",
		"envoy.config.rbac.v3.Principal.Set",
		"envoy.config.rbac.v3.Principal.Authenticated",
		"envoy.config.accesslog.v3.AccessLog",
		"envoy.config.accesslog.v3.AccessLogFilter",
		"envoy.config.accesslog.v3.AndFilter",
		"envoy.config.accesslog.v3.RuntimeFilter",
		"envoy.config.accesslog.v3.StatusCodeFilter",
		"envoy.config.accesslog.v3.ComparisonFilter",
		"envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
		"envoy.config.trace.v3.Tracing",
		"envoy.config.trace.v3.Tracing.Http",
		"envoy.config.trace.v3.OpenTelemetryConfig",
		"envoy.config.core.v3.GrpcService",
		"envoy.config.core.v3.GrpcService.GoogleGrpc",
		"envoy.config.core.v3.HttpService",
		"envoy.config.core.v3.HttpUri",

		// RDS.
		"envoy.config.route.v3.RouteConfiguration",
		"envoy.config.route.v3.VirtualHost",
		"envoy.config.route.v3.Route",
		"envoy.config.route.v3.RouteMatch",
		"envoy.config.route.v3.HeaderMatcher",
		"envoy.config.route.v3.QueryParameterMatcher",
		"envoy.config.route.v3.RouteAction",
		"envoy.config.route.v3.RouteAction.HashPolicy",
		"envoy.config.route.v3.RouteAction.HashPolicy.Header",
		"envoy.config.route.v3.RouteAction.HashPolicy.Cookie",
		"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties",
		"envoy.config.route.v3.WeightedCluster",
		"envoy.config.route.v3.WeightedCluster.ClusterWeight",
		"envoy.config.route.v3.RetryPolicy",
		"envoy.config.route.v3.RetryPolicy.RetryBackOff",
		"envoy.config.route.v3.RetryPolicy.RetryHostPredicate",

		// CDS and EDS.
		"envoy.config.cluster.v3.Cluster",
		"envoy.config.cluster.v3.Cluster.EdsClusterConfig",
		"envoy.config.cluster.v3.Cluster.CustomClusterType",
		"envoy.config.cluster.v3.Cluster.TransportSocketMatch",
		"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig",
		"envoy.config.cluster.v3.Cluster.CommonLbConfig",
		"envoy.config.cluster.v3.Cluster.RingHashLbConfig",
		"envoy.config.cluster.v3.CircuitBreakers",
		"envoy.config.cluster.v3.CircuitBreakers.Thresholds",
		"envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget",
		"envoy.config.cluster.v3.OutlierDetection",
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
		"envoy.config.endpoint.v3.ClusterLoadAssignment",
		"envoy.config.endpoint.v3.LocalityLbEndpoints",
		"envoy.config.endpoint.v3.LbEndpoint",
		"envoy.config.endpoint.v3.Endpoint",

		// SDS and TLS.
		"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
		"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
		"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
		"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext",
		"envoy.extensions.transport_sockets.tls.v3.TlsParameters",
		"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig",
		"envoy.extensions.transport_sockets.tls.v3.Secret",
		"envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
		"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
		"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher",
	}
}

// opaque lists message fields whose type is not kept but whose presence the
// sidecar checks (to reject what it does not implement): they stay, as
// bytes, with the same field number. (Members of a oneof always stay, as
// bytes when their type is not kept.)
func opaque() []string {
	return []string{
		"envoy.extensions.filters.http.rbac.v3.RBAC.matcher",
		"envoy.extensions.filters.http.rbac.v3.RBAC.shadow_matcher",
		"envoy.config.rbac.v3.Policy.condition",
		"envoy.config.rbac.v3.Policy.checked_condition",
		"envoy.config.route.v3.RetryPolicy.retry_priority",
		"envoy.config.route.v3.RetryPolicy.rate_limited_retry_back_off",
		"envoy.config.route.v3.RouteAction.regex_rewrite",
		"envoy.config.route.v3.RouteAction.max_stream_duration",
		"envoy.config.route.v3.RouteAction.HashPolicy.Header.regex_rewrite",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter.config_discovery",
		"envoy.config.cluster.v3.Cluster.CommonLbConfig.locality_weighted_lb_config",
		"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.tls_certificate_provider_instance",
		"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.tls_certificate_certificate_provider",
		"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.tls_certificate_certificate_provider_instance",
		"envoy.extensions.transport_sockets.tls.v3.TlsCertificate.private_key_provider",
	}
}
