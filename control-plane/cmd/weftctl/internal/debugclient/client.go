package debugclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// maxBody caps what is read from the control plane.
const maxBody = 64 << 20

// TypeVersion is a proxy's state for one resource type.
type TypeVersion struct {
	// Acked is the last version the proxy ACKed.
	Acked string `json:"acked,omitempty"`
	// Nack is the error detail of the last NACK, if the latest push was
	// rejected.
	Nack string `json:"nack,omitempty"`
	// Sent is the last version sent (ahead of Acked while a push is in
	// flight or was rejected).
	Sent string `json:"sent,omitempty"`
}

// ProxyStatus is one connected proxy as /debug/proxies lists it.
type ProxyStatus struct {
	ID          string                 `json:"id"`
	ConnectedAt time.Time              `json:"connectedAt"`
	Versions    map[string]TypeVersion `json:"versions"`
}

// Client talks to one control plane's debug address.
type Client struct {
	base *url.URL
	http *http.Client
}

// Option tunes New.
type Option func(*Client)

// WithHTTPClient replaces the default client (10 s timeout, no proxy).
func WithHTTPClient(c *http.Client) Option { return func(cl *Client) { cl.http = c } }

// New returns a client for the debug server at addr: host:port or a URL.
func New(addr string, opts ...Option) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("debugclient: control plane address %q is not host:port", addr)
	}
	c := &Client{base: u, http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Proxies lists the connected proxies, sorted by id.
func (c *Client) Proxies(ctx context.Context) ([]ProxyStatus, error) {
	body, err := c.get(ctx, "/debug/proxies", nil)
	if err != nil {
		return nil, err
	}
	var ps []ProxyStatus
	if err := json.Unmarshal(body, &ps); err != nil {
		return nil, fmt.Errorf("debugclient: /debug/proxies: %w", err)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
	return ps, nil
}

// ConfigDump returns one proxy's resources as the control plane renders
// them (JSON), indented.
func (c *Client) ConfigDump(ctx context.Context, proxy string) ([]byte, error) {
	body, err := c.get(ctx, "/debug/config_dump", url.Values{"proxy": {proxy}})
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return nil, fmt.Errorf("debugclient: /debug/config_dump: not JSON: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("debugclient: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("debugclient: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("debugclient: %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("debugclient: %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// statusColumns are the resource types proxy-status shows, in order.
var statusColumns = [...]struct{ name, typeURL string }{
	{"LDS", resource.ListenerType},
	{"RDS", resource.RouteType},
	{"CDS", resource.ClusterType},
	{"EDS", resource.EndpointType},
	{"SDS", resource.SecretType},
}

// WriteStatusTable writes one row per proxy: its id, how long it has been
// connected (as of now), and per type the ACKed version or the NACK reason.
func WriteStatusTable(w io.Writer, proxies []ProxyStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hdr := "PROXY\tCONNECTED"
	for _, c := range statusColumns {
		hdr += "\t" + c.name
	}
	fmt.Fprintln(tw, hdr)
	for _, p := range proxies {
		row := p.ID + "\t" + age(p.ConnectedAt, now)
		for _, c := range statusColumns {
			row += "\t" + cell(p.Versions[c.typeURL])
		}
		fmt.Fprintln(tw, row)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("debugclient: %w", err)
	}
	return nil
}

func cell(v TypeVersion) string {
	switch {
	case v.Nack != "" && v.Acked != "":
		return v.Acked + " (NACK: " + oneLine(v.Nack) + ")"
	case v.Nack != "":
		return "NACK: " + oneLine(v.Nack)
	case v.Sent != "" && v.Sent != v.Acked:
		if v.Acked == "" {
			return "(sent " + v.Sent + ")"
		}
		return v.Acked + " (sent " + v.Sent + ")"
	case v.Acked != "":
		return v.Acked
	default:
		return "-"
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}
