package cachekey_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/internal/cachekey"
)

// chromiumRecord is what headless Chromium did with one input URL.
type chromiumRecord struct {
	In string `json:"in"`
	// Href is new URL(in).href, or "" when Chromium refused the URL.
	Href  string `json:"href"`
	Error string `json:"error,omitempty"`
	// Host and Target are the Host header and request target Chromium sent
	// (plain-http URLs only; the test server answers every host).
	Host   string `json:"host,omitempty"`
	Target string `json:"target,omitempty"`
}

const chromiumFile = "testdata/chromium.json"

// TestChromiumRecord loads every table URL in headless Chromium and records
// what it parsed and sent to testdata/chromium.json. It is a one-off
// grounding run, not part of make test:
//
//	CDNFLOW_CHROMIUM=record go test -run TestChromiumRecord ./internal/cachekey/
//
// (apt-get install -y chromium). Host names are resolved to the local test
// server with --host-resolver-rules, so the Host header and request line
// are Chromium's own for every http URL.
func TestChromiumRecord(t *testing.T) {
	if os.Getenv("CDNFLOW_CHROMIUM") != "record" {
		t.Skip("set CDNFLOW_CHROMIUM=record to re-record testdata/chromium.json with headless Chromium")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	inputs := make([]string, len(urlCases))
	for i, c := range urlCases {
		inputs[i] = c.in
	}
	var (
		mu   sync.Mutex
		cur  = -1
		recs = make([]chromiumRecord, len(urlCases))
		done = make(chan struct{})
	)
	for i := range recs {
		recs[i].In = inputs[i]
	}
	list, _ := json.Marshal(inputs)
	page := `<!doctype html><meta charset="utf-8"><script>
const list = ` + string(list) + `;
(async () => {
  for (let i = 0; i < list.length; i++) {
    await fetch("/__mark?i=" + i);
    let href = "", error = "";
    try { href = new URL(list[i]).href } catch (e) { error = String(e) }
    await fetch("/__href?i=" + i, {method: "POST", body: JSON.stringify({href, error})});
    if (href.startsWith("http:")) {
      try { await fetch(list[i], {mode: "no-cors", cache: "no-store"}) } catch (e) {}
    }
  }
  await fetch("/__done");
})();
</script>`
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Host == fmt.Sprintf("127.0.0.1:%d", port) && r.URL.Path == "/__page":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, page)
		case r.Host == fmt.Sprintf("127.0.0.1:%d", port) && r.URL.Path == "/__mark":
			_, _ = fmt.Sscan(r.URL.Query().Get("i"), &cur)
		case r.Host == fmt.Sprintf("127.0.0.1:%d", port) && r.URL.Path == "/__href":
			var v struct{ Href, Error string }
			_ = json.NewDecoder(r.Body).Decode(&v)
			recs[cur].Href, recs[cur].Error = v.Href, v.Error
		case r.Host == fmt.Sprintf("127.0.0.1:%d", port) && r.URL.Path == "/__done":
			select {
			case <-done:
			default:
				close(done)
			}
		default:
			if cur >= 0 && recs[cur].Target == "" {
				recs[cur].Host, recs[cur].Target = r.Host, r.RequestURI
			}
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
		"--user-data-dir="+t.TempDir(),
		fmt.Sprintf("--host-resolver-rules=MAP * 127.0.0.1:%d", port),
		fmt.Sprintf("http://127.0.0.1:%d/__page", port))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("chromium did not finish: %s", out.String())
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	mu.Lock()
	data, _ := json.MarshalIndent(recs, "", "  ")
	mu.Unlock()
	if err := os.WriteFile(chromiumFile, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %d URLs from %s", len(recs), html.EscapeString(bin))
}

// TestChromiumAgrees checks Parse against the recorded Chromium run: for
// every URL Parse accepts, Chromium sent (or, for URLs it could not reach,
// parsed) the same host, port and request target. The URLs Parse refuses
// on purpose are listed with what Chromium did instead.
func TestChromiumAgrees(t *testing.T) {
	data, err := os.ReadFile(chromiumFile)
	if err != nil {
		t.Fatalf("read %s: %v", chromiumFile, err)
	}
	var recs []chromiumRecord
	if err := json.Unmarshal(data, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(urlCases) {
		t.Fatalf("%s has %d records for %d table URLs: re-record it", chromiumFile, len(recs), len(urlCases))
	}
	sent := 0
	for i, rec := range recs {
		if rec.In != urlCases[i].in {
			t.Fatalf("record %d is for %q, table has %q: re-record", i, rec.In, urlCases[i].in)
		}
		k, err := cachekey.Parse(rec.In)
		if err != nil {
			if !errors.Is(err, cachekey.ErrInvalid) {
				t.Errorf("%q: error %v does not wrap ErrInvalid", rec.In, err)
			}
			t.Logf("refused on purpose: %q (%v); Chromium: href %q error %q target %q", rec.In, err, rec.Href, rec.Error, rec.Target)
			continue
		}
		if rec.Href == "" {
			t.Errorf("%q: Parse accepts it, Chromium refused it: %s", rec.In, rec.Error)
			continue
		}
		// The URL Chromium built, without its fragment.
		href, _, _ := strings.Cut(rec.Href, "#")
		if href != k.String() {
			t.Errorf("%q: Chromium href %q, Parse %q", rec.In, href, k.String())
		}
		if rec.Target != "" {
			sent++
			if rec.Target != k.PathQuery || rec.Host != k.Authority() {
				t.Errorf("%q: Chromium sent Host %q target %q, Parse has %q %q", rec.In, rec.Host, rec.Target, k.Authority(), k.PathQuery)
			}
		}
	}
	if sent < 40 {
		t.Errorf("only %d recorded request lines; want at least 40 URLs grounded by a real request", sent)
	}
}
