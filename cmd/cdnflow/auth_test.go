//go:build !unit

// Not in `make unit`: package main links the embedded Temporal server (via
// stack and internal/devtemporal), 10 s of linking on 2 cores for these
// tests of 0.1 s; `make test` runs them.

package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/cli"
)

// `cdnflow api` without --api-keys refuses to start (exit 1, one line
// naming --insecure-no-auth) before it contacts anything; keys or
// --insecure-no-auth pass the check.
func TestAPIRefusesToStartWithoutKeys(t *testing.T) {
	t.Setenv("CDNFLOW_API_KEYS", "")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"api", "--temporal-address", "127.0.0.1:1", "--data-dir", t.TempDir(), "--log-level", "error"}, &out, &errOut)
	msg := errOut.String()
	if code != 1 || !strings.Contains(msg, "no --api-keys") || !strings.Contains(msg, "--insecure-no-auth") || strings.Count(msg, "\n") != 1 {
		t.Fatalf("api without keys = exit %d, stderr %q", code, msg)
	}
	for _, args := range [][]string{{"--api-keys", "k1"}, {"--insecure-no-auth"}} {
		cfg := config.Default()
		fs := serverFlags("api", &cfg, io.Discard)
		if _, err := cli.Parse(fs, args, 0); err != nil {
			t.Fatal(err)
		}
		if err := checkAPIAuth("api", cfg); err != nil {
			t.Errorf("api %v refused: %v", args, err)
		}
	}
	// dev and worker are not held to it.
	for _, cmd := range []string{"dev", "worker"} {
		if err := checkAPIAuth(cmd, config.Default()); err != nil {
			t.Errorf("%s refused: %v", cmd, err)
		}
	}
}

// `cdnflow dev` serves the API on loopback unless --api-addr says
// otherwise; `cdnflow api` keeps listening on every interface.
func TestDevAPIOnLoopbackByDefault(t *testing.T) {
	t.Setenv("CDNFLOW_API_ADDR", "") // restored after the test
	if err := os.Unsetenv("CDNFLOW_API_ADDR"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  string
		args []string
		want string
	}{
		{"dev", nil, "127.0.0.1:8080"},
		{"dev", []string{"--api-addr", ":9000"}, ":9000"},
		{"api", nil, ":8080"},
	} {
		cfg := config.Default()
		fs := serverFlags(tc.cmd, &cfg, io.Discard)
		if _, err := cli.Parse(fs, tc.args, 0); err != nil {
			t.Fatal(err)
		}
		if cfg.APIAddr != tc.want {
			t.Errorf("%s %v: api addr %q, want %q", tc.cmd, tc.args, cfg.APIAddr, tc.want)
		}
	}
}
