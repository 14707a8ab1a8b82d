package connector

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// maxAdminBody bounds one admin request body (a whole table of ~10,000
// sites fits).
const maxAdminBody = 64 << 20

// serveAdmin is the site table's admin protocol (AdminPath). Errors are
// 400 (bad site, host taken) or 404/405 with a one-line text body.
func (c *Connector) serveAdmin(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, AdminPath)
	if !ok && r.URL.Path+"/" != AdminPath {
		http.Error(w, "unknown admin path", http.StatusNotFound)
		return
	}
	switch {
	case name == "" && r.Method == http.MethodGet:
		writeJSON(w, c.table.State())
	case name == "" && r.Method == http.MethodPut:
		var sites []Site
		if !readJSON(w, r, &sites) {
			return
		}
		if err := c.table.Replace(sites); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
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
		res, err := c.table.Put(s)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.log.Info("site put", zap.String("site", name), zap.Stringer("gen", s.Gen), zap.Bool("applied", res.Applied))
		writeJSON(w, res)
	case name != "" && r.Method == http.MethodDelete:
		q := r.URL.Query()
		created, err1 := strconv.ParseInt(q.Get("created"), 10, 64)
		version, err2 := strconv.Atoi(q.Get("version"))
		if err := errors.Join(err1, err2); err != nil {
			http.Error(w, "created and version are required integers", http.StatusBadRequest)
			return
		}
		res := c.table.Delete(name, Generation{Created: created, Version: version})
		c.log.Info("site deleted", zap.String("site", name), zap.Bool("applied", res.Applied))
		writeJSON(w, res)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
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
