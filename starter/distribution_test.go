//go:build !unit

package starter_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/starter"
)

// `cdnflow distribution`: plan a PATCH, history, diff, a rollback with
// --wait, a stale --if-match (exit 1) and command lines that do not parse
// (exit 2).
func TestDistributionCommands(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{"app": "sec"}
	}})
	d := createDistribution(t, env)
	common := []string{"--api", env.API.URL, "--app-key", "app", "--secret-key", "sec", "--domain", d, "--interval", "50ms"}
	cmd := func(args ...string) (int, string, string) {
		return run(t, starter.Distribution, "", append(args, common...)...)
	}
	patch := filepath.Join(t.TempDir(), "patch.json")
	if err := os.WriteFile(patch, []byte(`{"description": "second"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cmd("plan", "--patch-file", patch)
	if code != starter.ExitOK || !strings.Contains(out, "version 1 → 2 (not applied): 1 change(s)") || !strings.Contains(out, `/description: null → "second"`) {
		t.Fatalf("plan: %d\n%s\n%s", code, out, errOut)
	}
	// A change through the NHN PATCH makes version 2.
	req := `{"domain":"` + d + `","description":"second"}`
	if code, _, errOut := run(t, starter.Distribution, "", "rollback", "--version", "1", "--if-match", "2", "--api", env.API.URL, "--app-key", "app", "--secret-key", "sec", "--domain", d); code != starter.ExitError || !strings.Contains(errOut, "412") {
		t.Fatalf("stale --if-match: %d %s", code, errOut)
	}
	nhnPatch(t, env, req)
	code, out, _ = cmd("rollback", "--version", "1", "--if-match", "2", "--immediate", "--wait", "--json")
	var summary struct {
		Version int
		Status  string
	}
	if code != starter.ExitOK || json.Unmarshal([]byte(out), &summary) != nil || summary.Version != 3 || summary.Status != "OPEN" {
		t.Fatalf("rollback --wait: %d %s", code, out)
	}
	code, out, _ = cmd("history")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != starter.ExitOK || len(lines) != 4 || !strings.HasPrefix(lines[1], "3 ") || !strings.Contains(lines[1], "rollback 1") || !strings.Contains(lines[2], "/description") {
		t.Fatalf("history: %d\n%s", code, out)
	}
	if code, out, _ = cmd("history", "2"); code != starter.ExitOK || !strings.Contains(out, `"description": "second"`) {
		t.Fatalf("history 2: %d %s", code, out)
	}
	if code, out, _ = cmd("diff", "--from", "2"); code != starter.ExitOK || !strings.Contains(out, "version 2 → 3: 1 change(s)") {
		t.Fatalf("diff: %d %s", code, out)
	}
	for _, args := range [][]string{{"rollback"}, {"diff"}, {"history", "x"}, {"bogus"}} {
		if code, _, _ := cmd(args...); code != starter.ExitUsage {
			t.Fatalf("%v: exit %d, want %d", args, code, starter.ExitUsage)
		}
	}
}

// nhnPatch sends an NHN PATCH (appKey "app") and waits until the
// distribution is OPEN again.
func nhnPatch(t *testing.T, env *testenv.Env, body string) {
	t.Helper()
	req, _ := http.NewRequest("PATCH", env.API.URL+"/v1.5/appKeys/app/distributions", strings.NewReader(body))
	req.Header.Set("Authorization", "sec")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var d struct{ Domain string }
	_ = json.Unmarshal([]byte(body), &d)
	eventually.Within(t, 60*time.Second, func() error {
		req, _ := http.NewRequest("GET", env.API.URL+"/v1/appKeys/app/distributions/"+d.Domain, nil)
		req.Header.Set("Authorization", "sec")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var v struct {
			Status  string
			Version int
		}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		if v.Status != "OPEN" || v.Version < 2 {
			return fmt.Errorf("after PATCH: %+v", v)
		}
		return nil
	})
}
