package config

import (
	"flag"
	"testing"
)

// --parent-connections is bound for the connector and dev, falls back to
// CDNFLOW_PARENT_CONNECTIONS, the flag wins over it, and a negative
// count is refused.
func TestParentConnectionsFlag(t *testing.T) {
	for name, register := range map[string]func(*Config, *flag.FlagSet){
		"connector": (*Config).RegisterConnector, "dev": (*Config).RegisterDev,
	} {
		t.Setenv("CDNFLOW_PARENT_CONNECTIONS", "3")
		c := Default()
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		register(&c, fs)
		if c.ParentConnections != 3 {
			t.Errorf("%s: from the environment %d, want 3", name, c.ParentConnections)
		}
		if err := fs.Parse([]string{"--parent-connections", "16"}); err != nil || c.ParentConnections != 16 {
			t.Errorf("%s: --parent-connections 16 gave %d (%v)", name, c.ParentConnections, err)
		}
	}
	c := Default()
	c.ParentConnections = -1
	if err := c.Validate(); err == nil {
		t.Error("--parent-connections -1 validated, want it refused")
	}
}
