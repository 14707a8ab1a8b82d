package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
)

// StandIn is a lightweight Go edge for fleet-sized benchmarks (200 real
// varnishd do not fit two cores; 1,000 stand-ins do, in one process). Its
// HTTP side answers as the edge VCL does (edge/vcl/render.go): PURGE 200
// "Purged" (X-Purged-Count; with edge.PurgeVerifyHeader the probe's 404
// "absent" instead), BAN 200 "Ban added" (400 for a regex with white
// space or quotes), the cache-only probe (X-Cdnflow-Probe) 200 "cached
// age=<s>" or 404 "absent", the site table's admin protocol
// (connector.AdminPath, with connector.HeaderIfDigest) over its own
// table (fleetTable: a shared Base plus a real connector.Table of what
// it was told), and GET a small body, MISS then HIT from an in-memory
// cache. Control requests (PURGE, BAN, the probe, the admin protocol)
// need the edge's control token (connector.ControlTokenFile of its
// secret), as the VCL's cdnflow_control demands: 403 otherwise. For a
// host its table holds, a GET answers X-Origin-Path (the site's first
// origin path and the request's, as the test origin would), and the
// status <code> when that path starts with /status/<code>/ (the test
// origin's failing paths), so a rollout's gate sees a bad change on a
// stand-in too. Its admin side is a permissive Varnish CLI: no
// authentication, 200 to every command, vcl.list -j listing what
// vcl.inline loaded, so distributions deploy to it. FleetOptions add
// latency, loss and restarts.
type StandIn struct {
	Edge  inventory.Edge
	table *fleetTable
	token string
	fleet *FleetOptions
	mu    sync.Mutex
	objs  map[string]time.Time // host+path → stored at
	stop  []func()
	// Requests counts the HTTP requests answered, by kind: "admin-digest"
	// (a table read answered by digest), "admin-entries" (a whole table
	// read), "admin-change", "purge", "ban", "probe", "get".
	Requests sync.Map // kind → *atomic.Int64
}

// StartStandIns starts n stand-in edges named prefix001-C1… on loopback
// with empty tables; dir holds their CLI secret file (the control
// token's key).
func StartStandIns(ctx context.Context, dir, prefix string, n int) ([]*StandIn, error) {
	return StartFleet(ctx, dir, prefix, n, FleetOptions{})
}

// StartFleet starts n stand-in edges named prefix001-C1… on loopback,
// shaped by o; each has its own HTTP and CLI listener (1,000 stand-ins
// are 2,000 sockets and a few goroutines each while idle).
func StartFleet(ctx context.Context, dir, prefix string, n int, o FleetOptions) ([]*StandIn, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	secret := filepath.Join(dir, "standin.secret")
	if err := os.WriteFile(secret, []byte("standin\n"), 0o600); err != nil {
		return nil, err
	}
	token, err := connector.ControlTokenFile(secret)
	if err != nil {
		return nil, err
	}
	fleet := &o
	var out []*StandIn
	for i := 0; i < n; i++ {
		s := &StandIn{objs: map[string]time.Time{}, table: newFleetTable(o.Base), token: token, fleet: fleet}
		httpLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return out, err
		}
		cliLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_ = httpLn.Close() // the Listen error is the one to report
			return out, err
		}
		srv := &edgeServer{h: s, conns: map[net.Conn]struct{}{}, ln: httpLn}
		go srv.serve()
		go serveCLI(cliLn)
		s.stop = []func(){srv.close, func() { _ = cliLn.Close() }}
		s.Edge = inventory.Edge{ID: fmt.Sprintf("%s%03d-C1", prefix, i+1), Region: "us", Country: "united_states",
			Address: httpLn.Addr().String(), AdminAddress: cliLn.Addr().String(), ConnectorAddress: cliLn.Addr().String(),
			SecretFile: secret, Kind: inventory.KindVarnish}
		out = append(out, s)
	}
	if o.RestartEvery > 0 && o.RestartShare > 0 {
		go restartLoop(ctx, out, o)
	}
	return out, nil
}

// Close stops the stand-in's listeners.
func (s *StandIn) Close() {
	for _, f := range s.stop {
		f()
	}
}

// Restart empties the stand-in's table and cache and gives it a new
// start time, as an edge whose connector restarted without its state
// file.
func (s *StandIn) Restart() {
	s.table.restart()
	s.mu.Lock()
	s.objs = map[string]time.Time{}
	s.mu.Unlock()
}

// Table is the stand-in's site table as GET AdminPath answers it.
func (s *StandIn) Table() connector.TableState { return s.table.view(true) }

// PutSite changes one entry of the stand-in's table directly (drift
// planted behind the control plane's back), as PUT AdminPath+name.
func (s *StandIn) PutSite(site connector.Site, force bool) (connector.PutResult, error) {
	return s.table.put(site, force)
}

// Count is how many requests of kind the stand-in answered.
func (s *StandIn) Count(kind string) int64 {
	if v, ok := s.Requests.Load(kind); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

func (s *StandIn) count(kind string) {
	v, _ := s.Requests.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

var banRegexOK = regexp.MustCompile(`^[^\s"]+$`)

// ServeHTTP answers as the edge VCL does, for the requests cdnflow sends,
// after the fleet's latency and loss.
func (s *StandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.fleet.deliver(w) {
		return
	}
	host := strings.ToLower(strings.TrimSuffix(strings.Split(r.Host, ":")[0], "."))
	key := host + r.URL.RequestURI()
	control := r.Header.Get(connector.HeaderAdmin) != "" || r.Method == "BAN" || r.Method == "PURGE" || r.Header.Get(edge.ProbeHeader) != ""
	if control && r.Header.Get(connector.HeaderControl) != s.token {
		synth(w, http.StatusForbidden, "Forbidden")
		return
	}
	switch {
	case r.Header.Get(connector.HeaderAdmin) != "":
		s.serveAdmin(w, r)
	case r.Method == "BAN":
		s.count("ban")
		re := r.Header.Get("X-Ban-Url-Regex")
		if re != "" && !banRegexOK.MatchString(re) {
			synth(w, http.StatusBadRequest, "X-Ban-Url-Regex must be one PCRE without white space or quotes")
			return
		}
		s.ban(host, re)
		synth(w, http.StatusOK, "Ban added")
	case r.Method == "PURGE":
		s.count("purge")
		n := 0
		s.mu.Lock()
		if _, ok := s.objs[key]; ok && r.Header.Get("X-Purge-Tag") == "" {
			delete(s.objs, key)
			n = 1
		}
		s.mu.Unlock()
		if r.Header.Get(edge.PurgeVerifyHeader) != "" {
			synth(w, http.StatusNotFound, "absent") // the probe of what was just purged
			return
		}
		w.Header().Set("X-Purged-Count", strconv.Itoa(n))
		synth(w, http.StatusOK, "Purged")
	case r.Header.Get(edge.ProbeHeader) != "":
		s.count("probe")
		s.mu.Lock()
		at, ok := s.objs[key]
		s.mu.Unlock()
		if !ok {
			synth(w, http.StatusNotFound, "absent")
			return
		}
		synth(w, http.StatusOK, fmt.Sprintf("cached age=%.3f", time.Since(at).Seconds()))
	default:
		s.count("get")
		if site, ok := s.table.lookup(host); ok && len(site.Origins) > 0 {
			p := strings.TrimSuffix(site.Origins[0].Path, "/") + r.URL.RequestURI()
			w.Header().Set("X-Origin-Path", p)
			if rest, ok := strings.CutPrefix(p, "/status/"); ok {
				if code, err := strconv.Atoi(strings.Split(rest, "/")[0]); err == nil && code >= 200 && code <= 599 && code != 200 {
					synth(w, code, "")
					return
				}
			}
		}
		s.mu.Lock()
		_, hit := s.objs[key]
		if !hit {
			s.objs[key] = time.Now()
		}
		s.mu.Unlock()
		w.Header().Set("X-Cache", map[bool]string{true: "HIT", false: "MISS"}[hit])
		_, _ = w.Write([]byte("stand-in body\n"))
	}
}

func (s *StandIn) ban(host, urlRegex string) {
	var re *regexp.Regexp
	if urlRegex != "" {
		re, _ = regexp.Compile(urlRegex)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.objs {
		h, path, _ := strings.Cut(k, "/")
		if h == host && (re == nil || re.MatchString("/"+path)) {
			delete(s.objs, k)
		}
	}
}

// synth answers status with reason as the status line's reason phrase
// (the stand-in's edgeServer writes it). Under another server, which
// writes its own phrase, an answer whose phrase cdnflow reads (a probe
// that found a fresh copy: "cached age=<s>") hijacks the connection to
// write the VCL's.
func synth(w http.ResponseWriter, status int, reason string) {
	if sw, ok := w.(*standInWriter); ok {
		sw.writeStatus(status, reason)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok || !strings.HasPrefix(reason, "cached age=") {
		w.WriteHeader(status)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	// A client that hung up needs no answer: the write and close errors go.
	defer func() { _ = conn.Close() }()
	_, _ = fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status, reason)
	_ = buf.Flush()
}

// serveCLI answers the Varnish CLI protocol permissively. The loaded and
// active VCLs are the stand-in's, kept across sessions as varnishd keeps
// them, so the edge sync sees a settled stand-in as settled.
func serveCLI(ln net.Listener) {
	st := &cliState{}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go cliSession(c, st)
	}
}

// cliState is one stand-in's VCLs; safe for concurrent use.
type cliState struct {
	mu     sync.Mutex
	loaded []string
	active string
}

func cliSession(c net.Conn, st *cliState) {
	defer func() { _ = c.Close() }() // the session is over; nothing is left to flush
	r := bufio.NewReader(c)
	// A reply to a session that hung up is lost; the next read ends the session.
	reply := func(body string) { _, _ = fmt.Fprintf(c, "200 %d\n%s\n", len(body), body) }
	reply("cdnflow stand-in edge")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if i := strings.Index(line, " << "); i >= 0 {
			token := strings.TrimSpace(line[i+4:])
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.TrimRight(l, "\n") == token {
					break
				}
			}
		}
		st.mu.Lock()
		switch fields[0] {
		case "vcl.inline", "vcl.load":
			st.loaded = append(st.loaded, strings.Trim(fields[1], `"`))
		case "vcl.use":
			st.active = strings.Trim(fields[1], `"`)
		case "vcl.discard":
			name := strings.Trim(fields[len(fields)-1], `"`)
			st.loaded = slices.DeleteFunc(st.loaded, func(n string) bool { return n == name })
		case "vcl.list":
			list := vclListJSON(st.loaded, st.active)
			st.mu.Unlock()
			reply(list)
			continue
		}
		st.mu.Unlock()
		reply("")
	}
}

func vclListJSON(loaded []string, active string) string {
	top := []any{2, []string{"vcl.list", "-j"}, 0}
	for _, n := range loaded {
		status := "available"
		if n == active {
			status = "active"
		}
		top = append(top, map[string]any{"name": n, "status": status, "state": "auto", "temperature": "warm", "busy": 0})
	}
	b, _ := json.Marshal(top)
	return string(b)
}
