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
// and exit 1, before it starts or creates anything; an unknown cluster
// command is a usage error (exit 2, the usage follows). (The cluster itself is
// tested by make test-cluster: stack/cluster/kill_test.go.)
func TestClusterUpRefusesBadSetup(t *testing.T) {
	bin := buildBinary(t)
	for name, tc := range map[string]struct {
		args []string
		want string
		code int
	}{
		"binaries missing":    {[]string{"--bin-dir", t.TempDir()}, "cdnflow: make cluster-bins", 1},
		"temporal port range": {[]string{"--temporal-port", "40000"}, "cdnflow: below 32768", 1},
		"unknown command":     {nil, `unknown cluster command "bogus"`, 2},
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
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
				t.Fatalf("exit: %v, want status %d; stderr:\n%s", err, tc.code, stderr.String())
			}
			first := strings.SplitN(stderr.String(), "\n", 2)[0]
			prefix, rest, _ := strings.Cut(tc.want, ": ")
			if tc.code == 2 {
				prefix, rest = "", tc.want
			}
			if !strings.HasPrefix(first, prefix) || !strings.Contains(first, rest) {
				t.Fatalf("first stderr line %q, want %q", first, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused up created %s (%v)", dir, err)
			}
		})
	}
}
