//go:build !unit

package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/internal/s3test"
)

// A payload URL that cannot work, or a store that does not answer
// at start, stops `cdnflow worker|api` with exit status 1 and one line on
// stderr that names the URL, before Temporal is dialled (the address below
// has no server).
func TestServerRefusesBadPayloadStore(t *testing.T) {
	bin := buildBinary(t)
	srv := s3test.Start(t) // also sets the AWS SDK's environment the children inherit
	srv.CreateBucket("cdnflow-payloads")
	cases := []struct{ name, url, want string }{
		{"unknown scheme", "ftp://bucket/x", `payload-url "ftp://bucket/x": scheme "ftp" is not one of file, gs, s3`},
		{"unparsable", "s3://b\x7f", `payload-url "s3://b\x7f"`},
		{"bad query", "s3://b?region=%zz", "invalid URL escape"},
		{"missing bucket", srv.URL("no-such-bucket"), "the bucket does not exist"},
		{"store down", srv.URL("cdnflow-payloads"), "payload store unavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "store down" {
				srv.Stop()
			}
			for _, cmd := range []string{"worker", "api"} {
				args := []string{cmd, "--temporal-address", "127.0.0.1:1", "--data-dir", t.TempDir(),
					"--payload-url", c.url, "--log-level", "error"}
				if cmd == "api" {
					args = append(args, "--api-addr", "127.0.0.1:0", "--insecure-no-auth")
				}
				run := exec.Command(bin, args...)
				var stderr bytes.Buffer
				run.Stderr = &stderr
				err := run.Run()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Fatalf("%s: exit %v, want status 1; stderr %q", cmd, err, stderr.String())
				}
				out := strings.TrimSuffix(stderr.String(), "\n")
				if strings.Contains(out, "\n") || !strings.HasPrefix(out, "cdnflow: ") || !strings.Contains(out, c.want) {
					t.Fatalf("%s: stderr %q, want one line with %q", cmd, stderr.String(), c.want)
				}
			}
		})
	}
}
