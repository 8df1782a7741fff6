package debugclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// Cert is one proxy's latest certificate as /debug/certs lists it (the
// control plane never serves a key).
type Cert struct {
	Proxy     string    `json:"proxy"`
	Identity  string    `json:"identity"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

// Certs lists the proxies' certificates, sorted by proxy.
func (c *Client) Certs(ctx context.Context) ([]Cert, error) {
	body, err := c.get(ctx, "/debug/certs", nil)
	if err != nil {
		return nil, err
	}
	var out []Cert
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("debugclient: /debug/certs: %w", err)
	}
	return out, nil
}

// WriteCertsTable writes one row per certificate: proxy, identity, serial,
// not before, not after (RFC 3339) and the time left as of now.
func WriteCertsTable(w io.Writer, certs []Cert, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROXY\tIDENTITY\tSERIAL\tNOT BEFORE\tNOT AFTER\tEXPIRES IN")
	for _, c := range certs {
		left := c.NotAfter.Sub(now).Round(time.Second)
		exp := left.String()
		if left <= 0 {
			exp = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Proxy, c.Identity, c.Serial,
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), exp)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("debugclient: %w", err)
	}
	return nil
}

// RotateRoot runs one root-rotation step (add, activate, remove) on the
// control plane's CA and returns its JSON answer (the bundle and signer).
func (c *Client) RotateRoot(ctx context.Context, step string, force bool) ([]byte, error) {
	q := url.Values{"step": {step}}
	if force {
		q.Set("force", "true")
	}
	return c.do(ctx, http.MethodPost, "/debug/ca/rotate-root", q)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values) ([]byte, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
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
