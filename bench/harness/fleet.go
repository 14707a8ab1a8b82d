package harness

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// FleetOptions shape a simulated fleet (StartFleet).
type FleetOptions struct {
	// Base is the table every stand-in starts with (nil: empty), shared.
	Base *Base
	// Latency is added before every HTTP answer (a far edge's round trip).
	Latency time.Duration
	// Loss is the share (0..1) of HTTP requests whose connection is
	// dropped without an answer (a lost packet the client sees as a reset).
	Loss float64
	// RestartEvery restarts RestartShare of the stand-ins (chosen at
	// random each time) with an empty table, every RestartEvery.
	RestartEvery time.Duration
	RestartShare float64
}

// deliver waits Latency and drops the connection of a lost request; it
// answers whether the request is to be answered.
func (o *FleetOptions) deliver(w http.ResponseWriter) bool {
	if o == nil {
		return true
	}
	if o.Latency > 0 {
		time.Sleep(o.Latency)
	}
	if o.Loss <= 0 || rand.Float64() >= o.Loss {
		return true
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close() // the loss itself
		}
	}
	return false
}

// restartLoop restarts a share of the fleet every o.RestartEvery until ctx
// ends.
func restartLoop(ctx context.Context, fleet []*StandIn, o FleetOptions) {
	t := time.NewTicker(o.RestartEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := max(1, int(o.RestartShare*float64(len(fleet))))
		for _, i := range rand.Perm(len(fleet))[:min(n, len(fleet))] {
			fleet[i].Restart()
		}
	}
}

// serveAdmin is the site table's admin protocol (connector.AdminPath) as
// the connector answers it (edge/connector/admin.go), over the
// stand-in's fleetTable.
func (s *StandIn) serveAdmin(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, connector.AdminPath)
	if !ok && r.URL.Path+"/" != connector.AdminPath {
		http.Error(w, "unknown admin path", http.StatusNotFound)
		return
	}
	switch {
	case name == "" && r.Method == http.MethodGet:
		want := r.Header.Get(connector.HeaderIfDigest)
		st := s.table.view(false)
		if want != "" && slices.Contains(strings.Split(want, ","), st.Digest) {
			s.count("admin-digest")
			st.Sites, st.Closed = nil, nil
		} else {
			s.count("admin-entries")
			st = s.table.view(true)
		}
		writeAdmin(w, st, nil)
	case name == "" && r.Method == http.MethodPut:
		s.count("admin-change")
		var sites []connector.Site
		if err := json.NewDecoder(r.Body).Decode(&sites); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeAdmin(w, connector.PutResult{Applied: true}, s.table.replace(sites))
	case name != "" && r.Method == http.MethodPut:
		s.count("admin-change")
		var site connector.Site
		if err := json.NewDecoder(r.Body).Decode(&site); err != nil || site.Name != name {
			http.Error(w, "bad site", http.StatusBadRequest)
			return
		}
		res, err := s.table.put(site, r.URL.Query().Get("force") == "1")
		writeAdmin(w, res, err)
	case name != "" && r.Method == http.MethodDelete:
		s.count("admin-change")
		q := r.URL.Query()
		created, err1 := strconv.ParseInt(q.Get("created"), 10, 64)
		version, err2 := strconv.Atoi(q.Get("version"))
		if err := errors.Join(err1, err2); err != nil {
			http.Error(w, "created and version are required integers", http.StatusBadRequest)
			return
		}
		res, err := s.table.del(name, connector.Generation{Created: created, Version: version}, q.Get("force") == "1")
		writeAdmin(w, res, err)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// writeAdmin answers v as JSON, or err as the connector does: 400 for a
// refused site (every table error a stand-in meets is one).
func writeAdmin(w http.ResponseWriter, v any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v) // a client that hung up needs no answer
}
