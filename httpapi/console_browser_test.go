//go:build !unit

package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/traffic"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// consoleURLs is how many objects the load loop spreads over: enough
// that after a purge its requests stay mostly misses for many seconds,
// so only a prewarm brings the hit ratio back quickly.
const consoleURLs = 2000

// An operator's browser (headless Chromium through chromedp) on the
// console: a new distribution appears on the fleet page with its version
// on the edge; with a load loop of ~50 req/s over 2,000 objects, its hit
// ratio on the edge's row is high after a prewarm, drops after a purge
// of everything and recovers after a second prewarm; the jobs page lists
// the three jobs and a prewarm's page its progress on the edge, with a
// link into the Temporal Web UI. Live traffic comes from the edge's
// request log (varnishncsa) through the connector. With
// CDNFLOW_CONSOLE_SCREENSHOTS=DIR it saves each page there (docs/console/).
func TestConsoleShowsRolloutJobsAndHitRatio(t *testing.T) {
	chromium := needChromium(t)
	originPort := cacheableOrigin(t)
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.OriginAllowLoopback = append(c.OriginAllowLoopback, originPort)
		c.ConsoleTemporalUI = "http://temporal-ui.test:8233"
	}})
	e := env.Edges[0]
	readTraffic(t, e.Connector.EnableTraffic(e.Edge.ID, 0), e.Process.Options().WorkDir)
	ctx := newBrowser(t, chromium)
	shots := os.Getenv("CDNFLOW_CONSOLE_SCREENSHOTS")

	run(t, ctx, "fleet page", chromedp.Navigate(env.API.URL+"/console"))
	var out struct {
		Distributions []service.DistributionView `json:"distributions"`
	}
	if h := nhn(t, env, "POST", "/distributions", secret, map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": "127.0.0.1", "port": atoi(originPort)}},
	}}}, &out); !h.IsSuccessful {
		t.Fatalf("create: %+v", h)
	}
	domain := out.Distributions[0].Domain
	// The fleet page updates itself: the distribution's row appears with
	// version 1 held by the edge.
	cell := fmt.Sprintf(`document.querySelector('tr[data-distribution=%q] td[data-edge=%q]')`, domain, e.Edge.ID)
	waitJS(t, ctx, cell+`?.textContent.includes("v1")`, "the fleet page shows v1 of "+domain+" on "+e.Edge.ID)
	screenshot(t, ctx, shots, "fleet.png")

	urls := make([]string, consoleURLs)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/obj/%d.js", domain, i)
	}
	prewarm := func() string {
		id := startPrewarm(t, env, map[string]any{"url_list": urls, "cf_domain": domain, "target_type": "region", "region": []string{"us"}}, nil)
		if st := waitPrewarm(t, env, id); st.Status != "COMPLETED" || st.Succeeded != consoleURLs {
			t.Fatalf("prewarm: %s, %d of %d warmed", st.Status, st.Succeeded, consoleURLs)
		}
		return id
	}
	first := prewarm()
	stopLoad := loadLoop(t, e.Edge.Address, urls)
	defer stopLoad()

	run(t, ctx, "distribution page", chromedp.Navigate(env.API.URL+"/console/distributions/"+domain+"?appKey="+appKey))
	ratio := fmt.Sprintf(`Number(document.querySelector('[data-hit-ratio=%q]')?.dataset.value ?? -2)`, e.Edge.ID)
	waitJS(t, ctx, ratio+" >= 0.9", "hit ratio ≥ 90 % after the prewarm")
	if h := nhn(t, env, "POST", "/purges", secret, map[string]any{"domain": domain, "purgeType": "ALL"}, nil); !h.IsSuccessful {
		t.Fatalf("purge: %+v", h)
	}
	waitJS(t, ctx, ratio+" >= 0 && "+ratio+" < 0.5", "hit ratio < 50 % after the purge")
	logRatio(t, ctx, ratio, "after the purge")
	second := prewarm()
	waitJS(t, ctx, ratio+" >= 0.9", "hit ratio ≥ 90 % after the second prewarm")
	logRatio(t, ctx, ratio, "after the second prewarm")
	screenshot(t, ctx, shots, "distribution.png")
	checkV1Traffic(t, env, domain, e.Edge.ID)

	run(t, ctx, "jobs page", chromedp.Navigate(env.API.URL+"/console/jobs"))
	for _, id := range []string{"prewarm-" + first, "prewarm-" + second, "purge-" + appKey + "-"} {
		waitJS(t, ctx, fmt.Sprintf(`[...document.querySelectorAll('tr[data-job]')].some(r => r.dataset.job.startsWith(%q))`, id), "job "+id+" listed")
	}
	screenshot(t, ctx, shots, "jobs.png")
	run(t, ctx, "job page", chromedp.Navigate(env.API.URL+"/console/jobs/prewarm-"+second))
	waitJS(t, ctx, fmt.Sprintf(`document.querySelector('tr[data-edge=%q]')?.children[1].textContent === "%d"`, e.Edge.ID, consoleURLs),
		"the prewarm's page shows every URL done on the edge")
	waitJS(t, ctx, `[...document.links].some(a => a.href.startsWith("http://temporal-ui.test:8233/namespaces/default/workflows/prewarm-`+second+`/"))`,
		"a link into the Temporal Web UI")
	screenshot(t, ctx, shots, "job.png")
}

// checkV1Traffic reads GET /v1/traffic for domain: the edge answers
// with its clock, the load loop's requests of the last seconds are there,
// per edge and summed.
func checkV1Traffic(t *testing.T, env *testenv.Env, domain, edgeID string) {
	t.Helper()
	var v service.TrafficView
	if code := getJSON(t, env.API.URL+"/v1/traffic?distribution="+domain+"&since="+strconv.FormatInt(time.Now().Unix()-10, 10), &v); code != http.StatusOK {
		t.Fatalf("GET /v1/traffic = %d", code)
	}
	if len(v.Edges) != 1 || v.Edges[0].Edge != edgeID || v.Edges[0].Error != "" || len(v.Edges[0].Series) != 1 || len(v.Total) != 1 {
		t.Fatalf("/v1/traffic: %+v", v)
	}
	var sum traffic.Point
	for _, p := range v.Total[0].Points {
		sum.Merge(p)
	}
	if v.Total[0].Distribution != domain || sum.Requests < 100 || sum.Hit == 0 {
		t.Fatalf("/v1/traffic of the last 10 s: %s %+v, want the load loop's ~500 requests", v.Total[0].Distribution, sum)
	}
	t.Logf("/v1/traffic, last 10 s: %d requests, %d hits, edge clock %d", sum.Requests, sum.Hit, v.Edges[0].Now)
}

// needChromium finds Debian's chromium: under CI=true its absence fails.
func needChromium(t *testing.T) string {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	switch {
	case err != nil && os.Getenv("CI") == "true":
		t.Fatal("chromium is not installed: CI must run the browser test (`make test` installs it, Makefile browser-deps)")
	case err != nil:
		t.Skip("chromium is not installed (Debian package chromium; `make browser-deps` installs it): browser test skipped")
	}
	return chromium
}

// cacheableOrigin serves every path as a small object cacheable for an
// hour, on loopback; it answers its port.
func cacheableOrigin(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = io.WriteString(w, "// "+r.URL.Path+"\n")
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

// readTraffic feeds agg from the edge's request log until the test ends.
func readTraffic(t *testing.T, agg *traffic.Aggregator, workDir string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := (&traffic.Reader{WorkDir: workDir, Agg: agg}).Run(ctx); err != nil {
			t.Errorf("traffic reader: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// loadLoop GETs random urls through the edge at about 50 requests a
// second until stopped.
func loadLoop(t *testing.T, edgeAddr string, urls []string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			u := urls[rand.IntN(len(urls))]
			host, path, _ := strings.Cut(strings.TrimPrefix(u, "http://"), "/")
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+edgeAddr+"/"+path, nil)
			req.Host = host
			if resp, err := c.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// newBrowser starts a headless Chromium with a laptop-sized window,
// closed when the test ends.
func newBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.WindowSize(1366, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// waitJS polls the page until expr (JavaScript) is true, for up to 60 s;
// the failure shows what the page says.
func waitJS(t *testing.T, ctx context.Context, expr, what string) {
	t.Helper()
	eventually.WithinEvery(t, 60*time.Second, 250*time.Millisecond, func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`Boolean(`+expr+`)`))
		if err == nil && ok {
			return nil
		}
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("main")?.innerText ?? document.body.innerText`))
		return fmt.Errorf("browser: %s: not seen (%v); the page shows:\n%s", what, err, text)
	})
}

func logRatio(t *testing.T, ctx context.Context, expr, when string) {
	t.Helper()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	t.Logf("hit ratio on the console %s: %.2f", when, v)
}

// screenshot saves the page as dir/name (PNG) when dir is set.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
