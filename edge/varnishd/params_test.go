package varnishd

import (
	"os"
	"strings"
	"testing"
)

// The edges of the compose and Kubernetes deployments start varnishd
// with the same parameters as those cdnflow starts (EdgeParams).
func TestDeploymentsRunEdgeParams(t *testing.T) {
	for _, f := range []string{"../../deployments/compose/docker-compose.yaml", "../../deployments/k8s/cdnflow.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, `"varnishd"`) {
				continue
			}
			for k, v := range EdgeParams {
				if !strings.Contains(line, `"-p", "`+k+"="+v+`"`) {
					t.Errorf("%s: varnishd without -p %s=%s: %s", f, k, v, strings.TrimSpace(line))
				}
			}
		}
	}
}

// Every edge gets EdgeParams; Options.Params override one by name.
func TestArgsCarryEdgeParams(t *testing.T) {
	a := strings.Join(args(Options{WorkDir: "/w", ListenAddr: "x", AdminAddr: "y", SecretFile: "s", StorageMB: 1,
		Params: map[string]string{"workspace_client": "1m", "thread_pools": "1"}}, "v.vcl"), " ")
	for _, want := range []string{"-p http_resp_hdr_len=32k", "-p workspace_client=1m", "-p thread_pools=1", "-p pcre2_match_limit=1000000"} {
		if !strings.Contains(a, want) {
			t.Errorf("args %q lack %q", a, want)
		}
	}
}
