//go:build !unit

package starter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/starter"
)

func run(t *testing.T, cmd func(context.Context, starter.IO, []string) int, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	sio := starter.IO{In: strings.NewReader(stdin), Out: &out, Err: &errOut, Client: http.DefaultClient}
	code := cmd(context.Background(), sio, args)
	return code, out.String(), errOut.String()
}

// The pipeline commands against a real running API: exit codes for
// success, partial failure and TIMEOUT; plain progress lines when stderr
// is not a terminal; a JSON summary.
func TestPipelineCommands(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.APIKeys = []string{"pipeline-key"}
		c.AppKeys = map[string]string{"app": "sec"}
		c.PurgeItemInterval = 0
		c.PrewarmAttempts = 1
	}})
	api := []string{"--api", env.API.URL, "--api-key", "pipeline-key", "--interval", "100ms"}
	edges := "pop:" + env.Edges[0].Edge.ID + "," + env.Edges[1].Edge.ID

	code, out, errOut := run(t, starter.Prewarm, "/a.js\n/b.css\n# comment\n\n",
		append(api, "--domain", "www.example.com", "--urls-file", "-", "--target", edges, "--wait", "--json")...)
	if code != starter.ExitOK {
		t.Fatalf("success: exit %d\n%s\n%s", code, out, errOut)
	}
	var summary struct {
		Status    string
		Total     int
		RequestID string
	}
	if err := json.Unmarshal([]byte(out), &summary); err != nil || summary.Status != "COMPLETED" || summary.Total != 2 {
		t.Fatalf("json summary %q: %v", out, err)
	}
	if !strings.Contains(errOut, "prewarm "+summary.RequestID+": 2/2 (100%)") || strings.Contains(errOut, "\r") {
		t.Fatalf("non-TTY progress:\n%s", errOut)
	}

	code, out, errOut = run(t, starter.Prewarm, "http://www.example.com/ok.js\nhttp://www.example.com/status/404/gone.js\n",
		append(api, "--domain", "www.example.com", "--urls-file", "-", "--target", edges, "--wait")...)
	if code != starter.ExitPartial || !strings.Contains(out, "failed: http://www.example.com/status/404/gone.js") {
		t.Fatalf("partial: exit %d\n%s\n%s", code, out, errOut)
	}

	code, out, errOut = run(t, starter.Prewarm, "/slow/3000/a\n",
		append(api, "--domain", "www.example.com", "--urls-file", "-", "--target", edges, "--timeout", "1s", "--wait")...)
	if code != starter.ExitTimeout || !strings.Contains(out, "TIMEOUT") {
		t.Fatalf("timeout: exit %d\n%s\n%s", code, out, errOut)
	}

	code, _, errOut = run(t, starter.Prewarm, "/a.js\n", "--api", env.API.URL, "--api-key", "wrong", "--domain", "www.example.com", "--urls-file", "-", "--target", edges)
	if code != starter.ExitError || !strings.Contains(errOut, "HTTP 403") {
		t.Fatalf("wrong key: exit %d\n%s", code, errOut)
	}

	code, out, errOut = run(t, starter.Status, "", append([]string{summary.RequestID}, append(api, "--json")...)...)
	if code != starter.ExitOK || !strings.Contains(out, `"COMPLETED"`) {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}

	// /metrics exposes the named series after these jobs.
	resp, err := http.Get(env.API.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{
		`cdnflow_jobs_started_total{type="prewarm"}`,
		`cdnflow_prewarm_pairs_total{edge="` + env.Edges[0].Edge.ID + `",result="success"}`,
		`cdnflow_prewarm_pairs_total{edge="` + env.Edges[0].Edge.ID + `",result="failed"}`,
		`cdnflow_edge_request_seconds_bucket{edge="` + env.Edges[1].Edge.ID + `",op="fetch"`,
		`cdnflow_api_request_seconds_count{code="200",method="POST",route="/prewarm"}`,
		`cdnflow_api_errors_total{code="403",route="/prewarm"}`,
		`temporal_`,
	} {
		if !strings.Contains(string(body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	// Job outcomes come from the workflows (with the SDK's tags added).
	for _, status := range []string{"COMPLETED", "TIMEOUT"} {
		re := regexp.MustCompile(`(?m)^cdnflow_jobs_finished_total\{[^}]*status="` + status + `"[^}]*type="prewarm"[^}]*\} [1-9]`)
		if !re.Match(body) {
			t.Errorf("/metrics lacks cdnflow_jobs_finished_total for prewarm %s", status)
		}
	}
}

func TestPurgeCommandWaitsForEveryEdge(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{"app": "sec"}
		c.PurgeItemInterval = 0
	}})
	domain := createDistribution(t, env)
	code, out, errOut := run(t, starter.Purge, "/a.js\n/b.js\n", "--api", env.API.URL, "--app-key", "app", "--secret-key", "sec",
		"--domain", domain, "--type", "ITEM", "--paths-file", "-", "--wait", "--interval", "100ms", "--json")
	if code != starter.ExitOK || !strings.Contains(out, `"progress": 100`) {
		t.Fatalf("purge: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = run(t, starter.Purge, "", "--api", env.API.URL, "--app-key", "app", "--secret-key", "bad", "--domain", domain, "--type", "ALL")
	if code != starter.ExitError || !strings.Contains(errOut, "10003") {
		t.Fatalf("bad secret: exit %d\n%s", code, errOut)
	}
}

func createDistribution(t *testing.T, env *testenv.Env) string {
	t.Helper()
	host, port, _ := strings.Cut(env.OriginAddr, ":")
	body := `{"distributions":[{"region":"GLOBAL","useOriginHttpProtocolDowngrade":false,"useOrigin":"Y","referrerType":"BLACKLIST","origins":[{"origin":"` + host + `","port":` + port + `}]}]}`
	req, _ := http.NewRequest("POST", env.API.URL+"/v1.5/appKeys/app/distributions", strings.NewReader(body))
	req.Header.Set("Authorization", "sec")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Distributions []struct{ Domain string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Distributions) != 1 {
		t.Fatalf("create: %v %+v", err, out)
	}
	d := out.Distributions[0].Domain
	eventually.Within(t, 60*time.Second, func() error {
		req, _ := http.NewRequest("GET", env.API.URL+"/v1.5/appKeys/app/distributions?domain="+d, nil)
		req.Header.Set("Authorization", "sec")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var list struct{ Distributions []struct{ Status string } }
		_ = json.NewDecoder(resp.Body).Decode(&list)
		if len(list.Distributions) == 1 && list.Distributions[0].Status == "OPEN" {
			return nil
		}
		return fmt.Errorf("distribution not OPEN: %+v", list)
	})
	return d
}

func TestScheduleCommands(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1})
	api := []string{"--api", env.API.URL}
	code, out, errOut := run(t, starter.Schedule, "/hourly.js\n", append([]string{"create"}, append(api, "--id", "hourly", "--kind", "prewarm",
		"--interval", "1h", "--domain", "www.example.com", "--list-file", "-", "--target", "region:all")...)...)
	if code != starter.ExitOK || !strings.Contains(out, `"id":"hourly"`) {
		t.Fatalf("create: %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = run(t, starter.Schedule, "", append([]string{"trigger", "hourly"}, api...)...); code != starter.ExitOK {
		t.Fatalf("trigger: %d %s", code, errOut)
	}
	eventually.Within(t, 60*time.Second, func() error {
		code, out, _ = run(t, starter.Schedule, "", append([]string{"get", "hourly"}, api...)...)
		if code == starter.ExitOK && strings.Contains(out, `"recentRuns":["scheduled-hourly`) {
			return nil
		}
		return fmt.Errorf("the triggered run does not show: %s", out)
	})
	if code, out, _ = run(t, starter.Schedule, "", append([]string{"list"}, api...)...); code != starter.ExitOK || !strings.Contains(out, `"hourly"`) {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, _, _ = run(t, starter.Schedule, "", append([]string{"delete", "hourly"}, api...)...); code != starter.ExitOK {
		t.Fatalf("delete: %d", code)
	}
	if code, _, errOut = run(t, starter.Schedule, "", append([]string{"get", "hourly"}, api...)...); code != starter.ExitError || !strings.Contains(errOut, "404") {
		t.Fatalf("get after delete: %d %s", code, errOut)
	}
}
