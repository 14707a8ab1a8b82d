package connector

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// admin sends one admin protocol request and decodes a JSON answer.
func admin(t *testing.T, base, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+AdminPath+path, rd)
	req.Header.Set(HeaderAdmin, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func hostGet(t *testing.T, base, host, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The site table routes by Host: each origin with its own path prefix,
// the Host rule, the TTL handed to the VCL, suspension; generations only
// move forward, a deleted site stays deleted for older changes, and one
// host belongs to one site.
func TestSiteTable(t *testing.T) {
	a, b := startOrigin(t, "A", "127.0.0.1", 0, nil), startOrigin(t, "B", "127.0.0.1", 0, nil)
	_, base := newConnector(t, Options{AllowLoopback: []string{port(a), port(b)}})
	site := Site{Name: "d.test", Hosts: []string{"d.test", "alias.test"}, Gen: Generation{Created: 10, Version: 1}, TTL: 60,
		Origins: []SiteOrigin{
			{Origin: Origin{Scheme: "http", Host: "127.0.0.1", Port: int(a.Addr.Port())}, Path: "/a%20b"},
			{Origin: Origin{Scheme: "http", Host: "127.0.0.1", Port: int(b.Addr.Port())}},
		}}
	var res PutResult
	if code := admin(t, base, http.MethodPut, "d.test", site, &res); code != 200 || !res.Applied {
		t.Fatalf("put: %d %+v", code, res)
	}
	bodies := map[string]bool{}
	for range 4 {
		resp, body := hostGet(t, base, "ALIAS.test:80", "/x/%E7%94%BB?q=1")
		if resp.StatusCode != 200 || resp.Header.Get(HeaderTTL) != "60" {
			t.Fatalf("routed GET: %d ttl %q %q", resp.StatusCode, resp.Header.Get(HeaderTTL), body)
		}
		bodies[body] = true
	}
	want := []string{"served by A path /a%20b/x/%E7%94%BB?q=1", "served by B path /x/%E7%94%BB?q=1"}
	for _, w := range want {
		if !bodies[w] {
			t.Errorf("no answer %q among %v", w, bodies)
		}
	}
	if h, _, _ := a.seen(); h != a.Addr.String() {
		t.Errorf("ORIGIN_HOSTNAME sent Host %q, want %q", h, a.Addr.String())
	}
	if resp, _ := hostGet(t, base, "other.test", "/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a host without a site: %d", resp.StatusCode)
	}

	older := site
	older.Gen.Version, older.Suspended = 0, true
	if admin(t, base, http.MethodPut, "d.test", older, &res); res.Applied {
		t.Error("an older generation replaced a newer one")
	}
	newer := site
	newer.Gen.Version, newer.Suspended, newer.ForwardRequestHost = 2, true, true
	if admin(t, base, http.MethodPut, "d.test", newer, &res); !res.Applied {
		t.Fatal("a newer generation was not applied")
	}
	if resp, _ := hostGet(t, base, "d.test", "/"); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("suspended site: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}

	thief := Site{Name: "e.test", Hosts: []string{"alias.test"}, Gen: Generation{Created: 11, Version: 1}, Origins: site.Origins}
	if code := admin(t, base, http.MethodPut, "e.test", thief, nil); code != http.StatusBadRequest {
		t.Errorf("a host of another site was taken: %d", code)
	}
	if admin(t, base, http.MethodDelete, "d.test?created=10&version=3", nil, &res); !res.Applied {
		t.Fatal("delete not applied")
	}
	if admin(t, base, http.MethodPut, "d.test", newer, &res); res.Applied {
		t.Error("a late retry brought a deleted site back")
	}
	recreated := site
	recreated.Gen = Generation{Created: 20, Version: 1}
	if admin(t, base, http.MethodPut, "d.test", recreated, &res); !res.Applied {
		t.Error("a domain created again was refused")
	}
	var st TableState
	admin(t, base, http.MethodGet, "", nil, &st)
	if len(st.Sites) != 1 || st.Sites[0].Gen != recreated.Gen || st.Digest != Digest([]Site{recreated}) {
		t.Errorf("table state %+v", st)
	}
	bad := site
	bad.Origins = []SiteOrigin{{Origin: site.Origins[0].Origin, Path: "/a b"}}
	if code := admin(t, base, http.MethodPut, "d.test", bad, nil); code != http.StatusBadRequest {
		t.Errorf("an origin path with a space: %d", code)
	}
	if code := admin(t, base, http.MethodPut, "", []Site{thief, recreated}, nil); code != http.StatusBadRequest {
		t.Errorf("a table with one host twice: %d", code)
	}
	if !strings.HasPrefix(AdminPath, "/.cdnflow/") {
		t.Fatal("AdminPath changed: the VCL and the activities depend on it")
	}
}
