package vcl_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/vcl"
)

// cacheOrigin answers every path with a body naming the path, the Host,
// the Cookie header it got and a serial number, so a test tells a hit
// (same serial) from a fetch. The path picks the caching headers:
// /private* "private, no-store", /nostore* "no-store", /nocache*
// "no-cache", /setcookie* a Set-Cookie, else max-age=300.
type cacheOrigin struct {
	srv     *httptest.Server
	mu      sync.Mutex
	n       int
	cookies []string // the Cookie header of every request, in order
}

func newCacheOrigin(t *testing.T) *cacheOrigin {
	o := &cacheOrigin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.n++
		n := o.n
		o.cookies = append(o.cookies, r.Header.Get("Cookie"))
		o.mu.Unlock()
		switch p := r.URL.Path; {
		case strings.HasPrefix(p, "/private"):
			w.Header().Set("Cache-Control", "private, no-store")
		case strings.HasPrefix(p, "/nostore"):
			w.Header().Set("Cache-Control", "no-store")
		case strings.HasPrefix(p, "/nocache"):
			w.Header().Set("Cache-Control", "no-cache")
		case strings.HasPrefix(p, "/setcookie"):
			w.Header().Set("Cache-Control", "max-age=300")
			w.Header().Set("Set-Cookie", "session=s"+strconv.Itoa(n)+"; HttpOnly")
		default:
			w.Header().Set("Cache-Control", "max-age=300")
		}
		_, _ = fmt.Fprintf(w, "%s %s cookie=%q #%d", r.Host, r.URL.Path, r.Header.Get("Cookie"), n)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *cacheOrigin) backend(t *testing.T) vcl.Backend {
	host, port, err := net.SplitHostPort(o.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return vcl.Backend{Host: host, Port: p}
}

func (o *cacheOrigin) lastCookie() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.cookies) == 0 {
		return "(no request)"
	}
	return o.cookies[len(o.cookies)-1]
}

func (o *cacheOrigin) fetches() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// answer is one edge response.
type answer struct {
	status int
	cache  string
	body   string
}

// get sends one request to the edge at addr; header lines are "Name: value".
func get(t *testing.T, addr, method, host, path string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, cache: resp.Header.Get("X-Cache"), body: string(b)}
}

// raw sends req (a whole HTTP/1.1 request head) on its own connection
// and reads the answer: request forms net/http would not send.
func raw(t *testing.T, addr, req string) answer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // a test connection, read to the end
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, cache: resp.Header.Get("X-Cache"), body: string(b)}
}

func startCacheEdge(t *testing.T, sites ...vcl.Site) string {
	t.Helper()
	edges := edgetest.StartEdges(t, 1, func(id string) vcl.Config {
		return vcl.Config{EdgeID: id, ControlToken: tok, Sites: sites}
	})
	return edges[0].Edge.Address
}

// By default cookies are not part of the key and never reach the origin:
// a browser holding an analytics cookie gets the object a prewarm (no
// cookies) warmed. A site forwarding "sid" keys its objects by sid's value
// and sends the origin sid only; an exact PURGE of the URL removes every
// variant.
func TestCacheCookiePolicy(t *testing.T) {
	o := newCacheOrigin(t)
	b := o.backend(t)
	addr := startCacheEdge(t,
		vcl.Site{Name: "www", Hosts: []string{"www.example.com"}, Origins: []vcl.Backend{b}},
		vcl.Site{Name: "shop", Hosts: []string{"shop.example.com"}, Origins: []vcl.Backend{b}, ForwardCookies: []string{"sid", "lang"}},
	)
	// Prewarm: a GET without cookies.
	if a := get(t, addr, "GET", "www.example.com", "/app.css"); a.cache != "MISS" {
		t.Fatalf("prewarm: %+v", a)
	}
	for _, c := range []string{"_ga=GA1.2.1234.5678", "_ga=GA1.2.9; sid=x", "a=b"} {
		if a := get(t, addr, "GET", "www.example.com", "/app.css", "Cookie: "+c); a.cache != "HIT" || !strings.Contains(a.body, `cookie=""`) {
			t.Errorf("browser with Cookie %q after the prewarm: %+v, want HIT of the cookieless object", c, a)
		}
	}
	// A cookie-bearing miss sends no Cookie to the origin either.
	get(t, addr, "GET", "www.example.com", "/other.css", "Cookie: _ga=1")
	if c := o.lastCookie(); c != "" {
		t.Errorf("origin got Cookie %q for a site that forwards none", c)
	}

	shop := func(cookie string) answer {
		if cookie == "" {
			return get(t, addr, "GET", "shop.example.com", "/cart")
		}
		return get(t, addr, "GET", "shop.example.com", "/cart", "Cookie: "+cookie)
	}
	if a := shop("_ga=1; sid=a"); a.cache != "MISS" || o.lastCookie() != "sid=a" {
		t.Fatalf("sid=a: %+v, origin got Cookie %q, want sid=a only", a, o.lastCookie())
	}
	if a := shop("sid=a; _ga=2; other=3"); a.cache != "HIT" || !strings.Contains(a.body, `cookie="sid=a"`) {
		t.Errorf("sid=a again with other cookies: %+v, want HIT", a)
	}
	if a := shop("sid=b"); a.cache != "MISS" || o.lastCookie() != "sid=b" {
		t.Errorf("sid=b: %+v (origin %q), want its own object", a, o.lastCookie())
	}
	if a := shop("sid=b; lang=ko"); a.cache != "MISS" || o.lastCookie() != "sid=b; lang=ko" {
		t.Errorf("sid=b lang=ko: %+v (origin %q), want its own object", a, o.lastCookie())
	}
	if a := shop("_ga=1"); a.cache != "MISS" || o.lastCookie() != "" {
		t.Errorf("no forwarded cookie: %+v (origin %q), want the cookieless object", a, o.lastCookie())
	}
	if a := shop(""); a.cache != "HIT" {
		t.Errorf("prewarm-like GET: %+v, want HIT of the cookieless object", a)
	}
	if a := shop("sid=b"); a.cache != "HIT" || !strings.Contains(a.body, `cookie="sid=b"`) {
		t.Errorf("sid=b again: %+v", a)
	}
	// One exact PURGE removes every cookie variant of the URL.
	if a := get(t, addr, "PURGE", "shop.example.com", "/cart", "X-Cdnflow-Control: "+tok); a.status != 200 {
		t.Fatalf("PURGE: %+v", a)
	}
	for _, c := range []string{"sid=a", "sid=b", ""} {
		if a := shop(c); a.cache != "MISS" {
			t.Errorf("after PURGE, Cookie %q: %+v, want MISS", c, a)
		}
	}
}

// Private answers (Cache-Control private/no-store/no-cache, Set-Cookie)
// are never shared between two visitors, with the site's forced lifetime
// (NHN useOrigin N, maxAge) or the origin's; a site that opted in stores
// Cache-Control private answers, never Set-Cookie ones.
func TestCachePrivateNeverShared(t *testing.T) {
	o := newCacheOrigin(t)
	b := o.backend(t)
	addr := startCacheEdge(t,
		vcl.Site{Name: "forced", Hosts: []string{"forced.example.com"}, Origins: []vcl.Backend{b}, TTL: time.Hour},
		vcl.Site{Name: "obey", Hosts: []string{"obey.example.com"}, Origins: []vcl.Backend{b}},
		vcl.Site{Name: "optin", Hosts: []string{"optin.example.com"}, Origins: []vcl.Backend{b}, TTL: time.Hour, CachePrivate: true},
	)
	for _, host := range []string{"forced.example.com", "obey.example.com"} {
		for _, path := range []string{"/private", "/nostore", "/nocache", "/setcookie"} {
			before := o.fetches()
			first := get(t, addr, "GET", host, path)
			second := get(t, addr, "GET", host, path)
			if first.cache == "HIT" || second.cache == "HIT" || o.fetches()-before != 2 || first.body == second.body {
				t.Errorf("%s%s: %+v then %+v (%d fetches): a private answer was shared", host, path, first, second, o.fetches()-before)
			}
		}
		// A cacheable path of the same site is stored.
		get(t, addr, "GET", host, "/public")
		if a := get(t, addr, "GET", host, "/public"); a.cache != "HIT" {
			t.Errorf("%s/public: %+v, want HIT", host, a)
		}
	}
	// The dangerous opt-in: private answers stored, Set-Cookie ones never.
	get(t, addr, "GET", "optin.example.com", "/private")
	if a := get(t, addr, "GET", "optin.example.com", "/private"); a.cache != "HIT" {
		t.Errorf("opt-in /private: %+v, want HIT", a)
	}
	get(t, addr, "GET", "optin.example.com", "/setcookie")
	if a := get(t, addr, "GET", "optin.example.com", "/setcookie"); a.cache == "HIT" {
		t.Errorf("opt-in /setcookie: %+v, a Set-Cookie answer was shared", a)
	}
}
