package connector

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// HeaderIfDigest on GET AdminPath names the table digests
// (TableState.Digest, comma-separated) whose entries the caller holds:
// when the table has one of them the answer is the TableState without
// Sites and Closed, so a control plane comparing a fleet against its
// desired state reads only the tables that differ from what it knows.
const HeaderIfDigest = "X-Cdnflow-If-Digest"

// maxAdminBody bounds one admin request body (a whole table of ~10,000
// sites fits).
const maxAdminBody = 64 << 20

// serveAdmin is the site table's admin protocol (AdminPath). Errors are
// 400 (bad site, host taken, bad force), 404/405, 500 when the change
// could not be saved (nothing changed) or 503 while shutting down, with a one-line text body.
func (c *Connector) serveAdmin(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, AdminPath)
	if !ok && r.URL.Path+"/" != AdminPath {
		http.Error(w, "unknown admin path", http.StatusNotFound)
		return
	}
	switch {
	case name == "" && r.Method == http.MethodGet:
		st := c.table.State()
		st.Unstorable = c.unstorable.rows()
		if d := r.Header.Get(HeaderIfDigest); d != "" && slices.Contains(strings.Split(d, ","), st.Digest) {
			// The caller holds this table already: the answer leaves the
			// entries out (TableState.Digest says which table it is).
			st.Sites, st.Closed = nil, nil
		}
		writeJSON(w, st)
	case name == "" && r.Method == http.MethodPut:
		var sites []Site
		if !readJSON(w, r, &sites) {
			return
		}
		if err := c.table.Replace(sites); err != nil {
			http.Error(w, err.Error(), errorStatus(err))
			return
		}
		c.log.Info("site table replaced", zap.Int("sites", len(sites)))
		writeJSON(w, PutResult{Applied: true})
	case name != "" && r.Method == http.MethodPut:
		var s Site
		if !readJSON(w, r, &s) {
			return
		}
		if s.Name != name {
			http.Error(w, "site name "+strconv.Quote(s.Name)+" does not match the path", http.StatusBadRequest)
			return
		}
		force, ok := forceParam(w, r)
		if !ok {
			return
		}
		res, err := c.table.Put(s, force)
		if err != nil {
			http.Error(w, err.Error(), errorStatus(err))
			return
		}
		c.log.Info("site put", zap.String("site", name), zap.Stringer("gen", s.Gen), zap.String("owner", s.Owner), zap.Bool("force", force),
			zap.Bool("applied", res.Applied), zap.Bool("changed", res.Changed))
		writeJSON(w, res)
	case name != "" && r.Method == http.MethodDelete:
		q := r.URL.Query()
		created, err1 := strconv.ParseInt(q.Get("created"), 10, 64)
		version, err2 := strconv.Atoi(q.Get("version"))
		if err := errors.Join(err1, err2); err != nil {
			http.Error(w, "created and version are required integers", http.StatusBadRequest)
			return
		}
		force, ok := forceParam(w, r)
		if !ok {
			return
		}
		gen := Generation{Created: created, Version: version}
		res, err := c.table.Delete(name, gen, force)
		if err != nil {
			http.Error(w, err.Error(), errorStatus(err))
			return
		}
		c.log.Info("site deleted", zap.String("site", name), zap.Stringer("gen", gen), zap.Bool("force", force), zap.Bool("applied", res.Applied))
		writeJSON(w, res)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// forceParam reads force= ("", "0", "1"); another value is answered 400.
func forceParam(w http.ResponseWriter, r *http.Request) (force, ok bool) {
	switch v := r.URL.Query().Get("force"); v {
	case "", "0":
		return false, true
	case "1":
		return true, true
	default:
		http.Error(w, "force must be 0 or 1, not "+strconv.Quote(v), http.StatusBadRequest)
		return false, false
	}
}

// errorStatus is 500 for a change the table could not save and 503 while
// the connector shuts down (the caller retries both), else 400 (the
// request is refused).
func errorStatus(err error) int {
	switch {
	case errors.Is(err, ErrNotSaved):
		return http.StatusInternalServerError
	case errors.Is(err, ErrTableClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
	if err := dec.Decode(v); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
