// Package activities holds the side effects of cdnflow's workflows: HTTP to
// edges, the Varnish admin CLI, callbacks, payload storage.
package activities

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/inventory"
)

// EdgeHealth is one edge's probe result.
type EdgeHealth struct {
	EdgeID    string `json:"edgeId"`
	HTTPOK    bool   `json:"httpOk"`
	AdminOK   bool   `json:"adminOk"`
	LatencyMS int64  `json:"latencyMs"`
	// ActiveVCL is the edge's active VCL; Drift is "vcl" when it is not
	// cdnflow's (the edge sync loop heals it within a round).
	ActiveVCL string `json:"activeVcl,omitempty"`
	Drift     string `json:"drift,omitempty"`
	Error     string `json:"error,omitempty"`
	// Unstorable are the origin answers the edge could not store or pass
	// (refused by its connector with the cause, connector.Unstorable),
	// per distribution (site) and cause since the connector started: the
	// MaxUnstorableRows largest counts.
	Unstorable []connector.Unstorable `json:"unstorable,omitempty"`
}

// MaxUnstorableRows bounds EdgeHealth.Unstorable (the check's result is
// a workflow payload).
const MaxUnstorableRows = 20

// EdgeCheck probes edges from the inventory.
type EdgeCheck struct {
	Inventory *inventory.Inventory
	// Edges reads each edge's site table for its unstorable answers; nil
	// leaves EdgeHealth.Unstorable empty.
	Edges *edge.Client
}

// ListEdges returns every inventory edge id, draining edges included (an
// operator checks an edge until it leaves the file).
func (a *EdgeCheck) ListEdges(ctx context.Context) ([]string, error) {
	return a.Inventory.AllIDs(), nil
}

// CheckEdge sends one GET through the edge and greets its admin port.
func (a *EdgeCheck) CheckEdge(ctx context.Context, edgeID string) (EdgeHealth, error) {
	h := EdgeHealth{EdgeID: edgeID}
	e, ok := a.Inventory.Get(edgeID)
	if !ok {
		h.Error = "not in the edge inventory"
		return h, nil
	}
	log := logger(ctx, "edgeId", edgeID)
	start := time.Now()
	var errs []string
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, "http://"+e.Address+"/", nil)
	if err == nil {
		req.Host = "cdnflow-healthcheck.invalid"
		var resp *http.Response
		resp, err = http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			h.HTTPOK = true // any HTTP answer means varnishd is serving
		}
	}
	if err != nil {
		errs = append(errs, fmt.Sprintf("http %s: %v", e.Address, err))
	}
	h.LatencyMS = time.Since(start).Milliseconds()
	if err := greetAdmin(ctx, e.AdminAddress); err != nil {
		errs = append(errs, fmt.Sprintf("admin %s: %v", e.AdminAddress, err))
	} else {
		h.AdminOK = true
		if err := activeVCL(ctx, e, &h); err != nil {
			errs = append(errs, fmt.Sprintf("admin %s: %v", e.AdminAddress, err))
		}
	}
	if a.Edges != nil {
		if err := a.unstorable(ctx, e, &h); err != nil {
			errs = append(errs, fmt.Sprintf("site table %s: %v", e.Address, err))
		}
	}
	h.Error = strings.Join(errs, "; ")
	log.Info("edge checked", "httpOk", h.HTTPOK, "adminOk", h.AdminOK, "unstorable", len(h.Unstorable), "error", h.Error)
	return h, nil
}

// unstorable fills h's Unstorable from e's site table: the largest
// counts first, at most MaxUnstorableRows.
func (a *EdgeCheck) unstorable(ctx context.Context, e inventory.Edge, h *EdgeHealth) error {
	st, err := a.Edges.Table(ctx, e)
	if err != nil {
		return err
	}
	rows := st.Unstorable
	slices.SortStableFunc(rows, func(x, y connector.Unstorable) int { return cmp.Compare(y.Count, x.Count) })
	h.Unstorable = rows[:min(len(rows), MaxUnstorableRows)]
	return nil
}

// activeVCL fills h's ActiveVCL and Drift from vcl.list.
func activeVCL(ctx context.Context, e inventory.Edge, h *EdgeHealth) error {
	conn, err := varnishadm.DialSecretFile(ctx, e.AdminAddress, e.SecretFile)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }() // a read-only admin session: nothing to lose on close
	if h.ActiveVCL, err = conn.Active(ctx); err != nil {
		return err
	}
	if !strings.HasPrefix(h.ActiveVCL, varnishadm.ManagedPrefix) {
		h.Drift = "vcl"
	}
	return nil
}

// adminGreetTimeout bounds the wait for the CLI banner. varnishd's
// manager serves its CLI one command at a time and compiles a VCL (gcc)
// within one: a manager busy loading a VCL — seconds on a loaded host —
// is slow, not down. The check activity's StartToClose is 15 s.
const adminGreetTimeout = 8 * time.Second

// greetAdmin reads the Varnish CLI banner: 107 (auth challenge) or 200.
func greetAdmin(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }() // only the greeting was read
	_ = conn.SetReadDeadline(time.Now().Add(adminGreetTimeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	if !strings.HasPrefix(line, "107 ") && !strings.HasPrefix(line, "200 ") {
		return fmt.Errorf("unexpected banner %q", strings.TrimSpace(line))
	}
	return nil
}
