package meshconfig

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("WithDefaults().Validate() = %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"mtls", func(c *Config) { c.MTLSMode = "SOMETIMES" }, "mtlsMode"},
		{"outbound", func(c *Config) { c.OutboundPolicy = "ANY" }, "outboundPolicy"},
		{"sampling", func(c *Config) { c.Tracing.SamplingRate = 2 }, "tracing.samplingRate"},
		{"timeout", func(c *Config) { c.ConnectTimeout.Duration = -time.Second }, "connectTimeout"},
		{"trust domain", func(c *Config) { c.TrustDomain = "" }, "trustDomain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	var c Config
	if err := json.Unmarshal([]byte(`{"connectTimeout":"250ms"}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.ConnectTimeout.Duration != 250*time.Millisecond {
		t.Fatalf("connectTimeout = %v", c.ConnectTimeout)
	}
	if err := json.Unmarshal([]byte(`{"connectTimeout":"soon"}`), &c); err == nil {
		t.Fatal("bad duration accepted")
	}
}
