package tracing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// otlpHTTP is the exporter's OTLP/HTTP client (otlptrace.Client; otlptrace
// turns the SDK's spans into OTLP ResourceSpans): each batch is one POST of
// an ExportTraceServiceRequest, binary protobuf, to the collector's URL
// (Jaeger and the OpenTelemetry Collector take it on
// http://<host>:4318/v1/traces). It is not the otlptracehttp exporter:
// that one (v1.47.0) imports grpc-go, through its otlpconfig package and the
// collector's generated service package, and the sidecar does not link
// grpc-go. The request message is one repeated field of ResourceSpans
// (opentelemetry-proto collector/trace/v1, field 1), written here with
// protowire. A response other than 2xx fails the export (its spans count as
// dropped); a partial success is not reported (the sidecar does not retry).
type otlpHTTP struct {
	url string
	hc  *http.Client
}

var _ otlptrace.Client = (*otlpHTTP)(nil)

// exportRequestSpans is ExportTraceServiceRequest.resource_spans.
const exportRequestSpans protowire.Number = 1

// maxResponseBody is what is read of a collector's answer (drained so the
// connection is reused).
const maxResponseBody = 64 << 10

func newOTLPHTTP(url string) *otlpHTTP {
	d := &net.Dialer{Timeout: DefaultExportTimeout}
	return &otlpHTTP{url: url, hc: &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}}}
}

// Start implements otlptrace.Client.
func (c *otlpHTTP) Start(context.Context) error { return nil }

// Stop implements otlptrace.Client: it closes the idle connections (an
// export in flight ends with its own deadline).
func (c *otlpHTTP) Stop(context.Context) error {
	c.hc.CloseIdleConnections()
	return nil
}

// UploadTraces implements otlptrace.Client.
func (c *otlpHTTP) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	body, err := exportRequest(spans)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("otlp: POST %s: %s", c.url, resp.Status)
	}
	return nil
}

// exportRequest is the wire form of an ExportTraceServiceRequest holding
// spans.
func exportRequest(spans []*tracepb.ResourceSpans) ([]byte, error) {
	var (
		b   []byte
		opt = proto.MarshalOptions{}
	)
	for _, rs := range spans {
		b = protowire.AppendTag(b, exportRequestSpans, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(opt.Size(rs)))
		var err error
		if b, err = opt.MarshalAppend(b, rs); err != nil {
			return nil, fmt.Errorf("otlp: %w", err)
		}
	}
	return b, nil
}
