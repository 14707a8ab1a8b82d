//go:build !unit

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `cdnflow cluster up` refuses a layout it cannot run with one clear line
// and exit 1, before it starts or creates anything. (The cluster itself is
// tested by make test-cluster: internal/cluster/kill_test.go.)
func TestClusterUpRefusesBadSetup(t *testing.T) {
	bin := buildBinary(t)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"binaries missing":    {[]string{"--bin-dir", t.TempDir()}, "make cluster-bins"},
		"temporal port range": {[]string{"--temporal-port", "40000"}, "below 32768"},
		"unknown command":     {nil, `unknown cluster command "bogus"`},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cluster")
			args := append([]string{"cluster", "up", "--dir", dir}, tc.args...)
			if tc.args == nil {
				args = []string{"cluster", "bogus"}
			}
			cmd := exec.Command(bin, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1; stderr:\n%s", err, stderr.String())
			}
			first := strings.SplitN(stderr.String(), "\n", 2)[0]
			if !strings.HasPrefix(first, "cdnflow: ") || !strings.Contains(first, tc.want) {
				t.Fatalf("first stderr line %q, want a cdnflow: error naming %q", first, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused up created %s (%v)", dir, err)
			}
		})
	}
}
