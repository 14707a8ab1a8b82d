package vcl_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
)

var origin = vcl.Backend{Host: "127.0.0.1", Port: 8080}

// tok is the control token of a test edge.
var tok = connector.ControlToken([]byte("test secret\n"))

func fullConfig() vcl.Config {
	return vcl.Config{
		EdgeID:         "ATL56-C1",
		ConnectorPort:  6090,
		ControlToken:   tok,
		DefaultBackend: &origin,
		PurgeACL:       []string{"127.0.0.1", "::1", "10.1.2.3/8", "2001:db8::/32"},
		Sites: []vcl.Site{
			{Name: "img", Hosts: []string{"IMG.Example.com.", "cdn.example.com"}, Origins: []vcl.Backend{origin, {Host: "Origin.Example.net", Port: 80}},
				OriginPath: "/v1/", TTL: 1500 * time.Millisecond, ReferrerType: vcl.ReferrerWhitelist,
				Referrers: []string{`^https://(www\.)?example\.com/`, `say "hi"`, `ünï`}},
			{Name: "api", Hosts: []string{"api.example.com"}, Origins: []vcl.Backend{{Host: "::1", Port: 9000}, {Scheme: "https", Host: "Secure.Example.net", Port: 8443}},
				ForwardHostHeader: vcl.ForwardRequestHost, ReferrerType: vcl.ReferrerBlacklist, Referrers: []string{"spam"}, AllowEmptyReferrer: true},
			{Name: "gone", Hosts: []string{"gone.example.com"}, Origins: []vcl.Backend{{Host: "10.0.0.9", Port: 81}}, Suspended: true},
		},
	}
}

// loadableConfig is fullConfig with origin names that resolve offline:
// Varnish resolves backend hosts when it compiles the VCL.
func loadableConfig() vcl.Config {
	cfg := fullConfig()
	cfg.Sites[0].Origins[1] = vcl.Backend{Host: "localhost", Port: 80}
	return cfg
}

func TestRenderContents(t *testing.T) {
	src, err := vcl.Render(fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"vcl 4.1;",
		"import xkey;",
		`.port = "6090";`,
		`req.http.host == "img.example.com" || req.http.host == "cdn.example.com"`,
		`"10.0.0.0"/8;`,
		`"2001:db8::"/32;`,
		"unset req.http.X-Cdnflow-Origins;",
		"unset bereq.http.X-Cdnflow-Origin-Host;",
		`set bereq.http.X-Cdnflow-Origins = "http://127.0.0.1:8080";`,
		"unset resp.http.X-Cdnflow-Origin-Error;",
		"set beresp.http.x-cdn-url = bereq.url;",
		`set beresp.ttl = std.duration(beresp.http.X-Cdnflow-Forced-Ttl + "s", 0s);`,
		`{"say "hi""}`,
		`set resp.http.X-Edge-Id = "ATL56-C1";`,
		"if (req.http.X-Cdnflow-Admin)",
		// Control requests: ACL and token; the token and the health
		// header go no further; grace for a connector outage.
		`if (client.ip !~ cdnflow_purgers || req.http.X-Cdnflow-Control != "` + tok + `")`,
		"unset req.http.X-Cdnflow-Control;",
		"unset req.http.X-Cdnflow-Health;",
		"if (std.healthy(cdnflow_connector_health))",
		"set beresp.grace = 24h;",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("rendered VCL lacks %q", want)
		}
	}
	// PURGE/BAN, the probe and the site table: each checks ACL and token.
	if n := strings.Count(src, "call cdnflow_control;"); n != 3 {
		t.Errorf("%d control checks, want 3", n)
	}
	// The connector is the only backend; only the default origin is named
	// in the VCL; origins, paths and the suspended site live in the table.
	if n := strings.Count(src, "\nbackend "); n != 2 {
		t.Errorf("%d backends, want the connector and its probed twin only", n)
	}
	for _, absent := range []string{"origin.example.net", "secure.example.net", "gone.example.com", "/v1"} {
		if strings.Contains(src, absent) {
			t.Errorf("rendered VCL names %q: it belongs to the site table", absent)
		}
	}
	// Only sites with a referrer rule have VCL of their own.
	if n := strings.Count(src, "\nsub cdnflow_site_"); n != 2 {
		t.Errorf("%d site subs, want 2 (img and api have referrer rules)", n)
	}
}

// Entry puts into the site table what the VCL does not hold: each
// origin with its path (its own, else the site's), the Host rule, the
// TTL rounded up to whole seconds, suspension and the referrer rule.
func TestEntry(t *testing.T) {
	cfg := fullConfig()
	cfg.Sites[1].Origins[0].Path = "/own"
	entries, err := vcl.Entries(cfg, connector.Generation{Created: 5, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	img, api, gone := entries[0], entries[1], entries[2]
	if img.Hosts[0] != "img.example.com" || img.Origins[1].Host != "origin.example.net" || img.Origins[0].Path != "/v1" || img.Origins[1].Path != "/v1" {
		t.Errorf("img entry %+v", img)
	}
	if img.TTL != 2 || img.ForwardRequestHost || img.Referrer == nil || img.Referrer.Type != vcl.ReferrerWhitelist {
		t.Errorf("img rules %+v", img)
	}
	if api.Origins[0].Path != "/own" || api.Origins[1].Path != "" || !api.ForwardRequestHost || api.Origins[1].Scheme != "https" {
		t.Errorf("api entry %+v", api)
	}
	if !gone.Suspended || gone.Referrer != nil || gone.Gen != (connector.Generation{Created: 5, Version: 2}) {
		t.Errorf("gone entry %+v", gone)
	}
	back := vcl.SiteOfEntry(api)
	if back.ForwardHostHeader != vcl.ForwardRequestHost || len(back.Origins) != 0 || back.ReferrerType != vcl.ReferrerBlacklist {
		t.Errorf("SiteOfEntry %+v", back)
	}
	none := fullConfig()
	none.Sites[0].Origins = nil
	if _, err := vcl.Entries(none, connector.Generation{}); err == nil {
		t.Error("a site without origins has an entry")
	}
	bad := fullConfig()
	bad.Sites[2].Origins[0].Path = "/" + strings.Repeat("a", vcl.MaxOriginPathLen)
	if _, err := vcl.Entries(bad, connector.Generation{}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a too long origin path: %v", err)
	}
}

func TestRenderMinimal(t *testing.T) {
	src, err := vcl.Render(vcl.Config{ConnectorPort: 6090, ControlToken: tok})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backend cdnflow_connector {", "set req.backend_hint = cdnflow_connector;", "set resp.http.X-Edge-Id = server.identity;", `"127.0.0.1";`} {
		if !strings.Contains(src, want) {
			t.Errorf("minimal VCL lacks %q", want)
		}
	}
	if strings.Contains(src, "import directors;") {
		t.Error("directors imported without multi-origin sites")
	}
}

func TestRenderRejectsUnsafeValues(t *testing.T) {
	site := func(mod func(*vcl.Site)) vcl.Config {
		s := vcl.Site{Name: "s", Hosts: []string{"a.example.com"}, Origins: []vcl.Backend{origin}}
		mod(&s)
		return vcl.Config{ConnectorPort: 6090, ControlToken: tok, Sites: []vcl.Site{s}}
	}
	cases := map[string]vcl.Config{
		"no connector":   {ControlToken: tok},
		"connector port": {ConnectorPort: 70000, ControlToken: tok},
		"no token":       {ConnectorPort: 6090},
		"token quote":    {ConnectorPort: 6090, ControlToken: tok[:40] + `"; }`},
		"token short":    {ConnectorPort: 6090, ControlToken: "0123456789abcdef"},
		"edge id quote":  {ConnectorPort: 6090, ControlToken: tok, EdgeID: `x"; }`},
		"acl hostname":   {ConnectorPort: 6090, ControlToken: tok, PurgeACL: []string{"localhost"}},
		"acl injection":  {ConnectorPort: 6090, ControlToken: tok, PurgeACL: []string{`1.2.3.4"; "0.0.0.0"/0`}},
		"default host":   {ConnectorPort: 6090, ControlToken: tok, DefaultBackend: &vcl.Backend{Host: `a"b`, Port: 80}},
		"default port":   {ConnectorPort: 6090, ControlToken: tok, DefaultBackend: &vcl.Backend{Host: "a.b", Port: 0}},
		"origin scheme":  site(func(s *vcl.Site) { s.Origins = []vcl.Backend{{Scheme: "ftp", Host: "a.com", Port: 21}} }),
		"too many origins": site(func(s *vcl.Site) {
			s.Origins = make([]vcl.Backend, 11)
			for i := range s.Origins {
				s.Origins[i] = origin
			}
		}),
		"host quote":         site(func(s *vcl.Site) { s.Hosts = []string{`a.com" || true || "`} }),
		"host port":          site(func(s *vcl.Site) { s.Hosts = []string{"a.com:8080"} }),
		"host space":         site(func(s *vcl.Site) { s.Hosts = []string{"a .com"} }),
		"host empty":         site(func(s *vcl.Site) { s.Hosts = []string{""} }),
		"no hosts":           site(func(s *vcl.Site) { s.Hosts = nil }),
		"origin newline":     site(func(s *vcl.Site) { s.Origins = []vcl.Backend{{Host: "a\n.com", Port: 80}} }),
		"origin path quote":  site(func(s *vcl.Site) { s.OriginPath = `/a"b` }),
		"origin path rel":    site(func(s *vcl.Site) { s.OriginPath = "a/b" }),
		"origin path \\E":    site(func(s *vcl.Site) { s.OriginPath = `/a\Eb` }),
		"forward host":       site(func(s *vcl.Site) { s.ForwardHostHeader = "CLIENT" }),
		"negative ttl":       site(func(s *vcl.Site) { s.TTL = -time.Second }),
		"referrer type":      site(func(s *vcl.Site) { s.ReferrerType = "GREYLIST" }),
		"referrer longstr":   site(func(s *vcl.Site) { s.ReferrerType = vcl.ReferrerBlacklist; s.Referrers = []string{`a"}b`} }),
		"referrer newline":   site(func(s *vcl.Site) { s.ReferrerType = vcl.ReferrerBlacklist; s.Referrers = []string{"a\nb"} }),
		"referrer bad regex": site(func(s *vcl.Site) { s.ReferrerType = vcl.ReferrerBlacklist; s.Referrers = []string{"(a"} }),
		"referrer pcre only": site(func(s *vcl.Site) { s.ReferrerType = vcl.ReferrerBlacklist; s.Referrers = []string{"a(?=b)"} }),
		"referrer empty":     site(func(s *vcl.Site) { s.ReferrerType = vcl.ReferrerBlacklist; s.Referrers = []string{""} }),
		"site name":          site(func(s *vcl.Site) { s.Name = "a\nb" }),
		"duplicate host": {ConnectorPort: 6090, ControlToken: tok, Sites: []vcl.Site{
			{Name: "a", Hosts: []string{"x.com"}, Origins: []vcl.Backend{origin}},
			{Name: "b", Hosts: []string{"X.com"}, Origins: []vcl.Backend{origin}},
		}},
	}
	for name, cfg := range cases {
		if src, err := vcl.Render(cfg); err == nil {
			t.Errorf("%s: accepted; rendered:\n%s", name, src)
		}
	}
}

// TestRenderCompiles runs varnishd's VCL compiler on several shapes of
// configuration, so nothing Render emits is only syntactically plausible.
func TestRenderCompiles(t *testing.T) {
	edgetest.RequireVarnish(t)
	configs := map[string]vcl.Config{
		"empty":      {ConnectorPort: 6090, ControlToken: tok},
		"default":    {EdgeID: "E1", ConnectorPort: 6090, ControlToken: tok, DefaultBackend: &origin},
		"full":       loadableConfig(),
		"sites only": {ConnectorPort: 6090, ControlToken: tok, Sites: loadableConfig().Sites},
	}
	// An edge's VCL is rendered from its site table, without origins.
	entries, err := vcl.Entries(loadableConfig(), connector.Generation{Created: 1, Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	table := vcl.Config{ConnectorPort: 6090, ControlToken: tok}
	for _, e := range entries {
		table.Sites = append(table.Sites, vcl.SiteOfEntry(e))
	}
	configs["from the table"] = table
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src, err := vcl.Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			file := filepath.Join(dir, "test.vcl")
			if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			bin, _ := exec.LookPath("varnishd")
			if bin == "" {
				bin = "/usr/sbin/varnishd"
			}
			args := []string{"-C", "-n", filepath.Join(dir, "n"), "-f", file}
			if os.Geteuid() == 0 {
				// As root varnishd would read the file as its own user,
				// which cannot enter the test's private temp dir.
				args = append(args, "-j", "none")
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("varnishd -C: %v\n%s", err, vccMessage(string(out)))
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestRenderLoadsIntoVarnishd boots an edge with the full configuration
// (origin names resolve at load time, so only IPs and localhost are used).
func TestRenderLoadsIntoVarnishd(t *testing.T) {
	cfg := loadableConfig()
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		c := cfg
		c.EdgeID = id
		return c
	})
	if edges[0].Process == nil {
		t.Fatal("no process")
	}
}

// vccMessage drops the generated C source varnishd -C prints, keeping the
// compiler's complaint.
func vccMessage(out string) string {
	if i := strings.Index(out, "Message from"); i >= 0 {
		return tail(out[i:], 2000)
	}
	return tail(out, 2000)
}
