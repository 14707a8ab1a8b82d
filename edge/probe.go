package edge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/inventory"
)

// ProbeHeader asks the edge VCL (edge/vcl) for a cache-only lookup: the
// edge answers from its cache alone and never fetches from the origin. Only
// clients in the edge's purge ACL with its control token may send it
// (others get 403).
const ProbeHeader = "X-Cdnflow-Probe"

// PurgeVerifyHeader on a PURGE asks the edge VCL to purge and then answer
// the cache-only probe of the same object in the same request: one round
// trip instead of two. An edge VCL without this handling answers
// "Purged" as for any PURGE.
const PurgeVerifyHeader = "X-Cdnflow-Purge-Verify"

// ProbeResult is what a cache-only lookup found for one object.
type ProbeResult struct {
	// Fresh is true when the edge holds a fresh copy it would serve as a HIT.
	// A soft-purged (stale) copy and no copy at all are both not Fresh.
	Fresh bool
	// Age is how long the edge has held the fresh copy, when Fresh: the
	// edge VCL answers obj.age less the object's age when stored
	// (edge/vcl heldFor), so an origin's Age header does not count.
	Age time.Duration
}

// ageSlack absorbs the edge's rounding of ages and the time between a
// probe's answer and the caller's clock read.
const ageSlack = time.Second

// StoredBefore reports whether the probe found a fresh copy the edge
// stored before t (the time a PURGE was sent, on the caller's clock; with
// ageSlack): a copy the purge should have removed. A fresh copy stored
// after t was fetched anew (a visitor asked meanwhile) and is not.
func (r ProbeResult) StoredBefore(t time.Time) bool {
	return r.Fresh && r.Age > time.Since(t)+ageSlack
}

// Probe looks host+path up in edge e's cache without fetching it (the VCL
// answers 200 "cached age=<seconds held>", or 404 "stale" or "absent"). path
// is the canonical request target (cachekey). Errors: a transport error,
// or *StatusError for any other answer (403: this client is outside the
// purge ACL, or the edge's VCL has another control token).
func (c *Client) Probe(ctx context.Context, e inventory.Edge, host, path string) (ProbeResult, error) {
	resp, err := c.doControl(ctx, e, http.MethodGet, host, path, http.Header{ProbeHeader: {"1"}, "Accept-Encoding": {"gzip"}}, c.opts.ProbeTimeout)
	if err != nil {
		return ProbeResult{}, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return probeAnswer(e, path, resp)
}

// PurgeVerified evicts host+path (soft: mark stale) and answers the
// cache-only probe of it the edge made right after, in the same request
// (PurgeVerifyHeader). verified is false when the edge answered a plain
// "Purged" (a VCL without it, or only a hit-for-pass marker was cached):
// the purge took place and the caller probes separately. Errors: a
// transport error, or *StatusError for any other answer.
func (c *Client) PurgeVerified(ctx context.Context, e inventory.Edge, host, path string, soft bool) (r ProbeResult, verified bool, err error) {
	h := http.Header{PurgeVerifyHeader: {"1"}, "Accept-Encoding": {"gzip"}}
	if soft {
		h.Set("X-Purge-Soft", "1")
	}
	resp, err := c.doControl(ctx, e, "PURGE", host, path, h, c.opts.PurgeTimeout)
	if err != nil {
		return ProbeResult{}, false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return verifiedAnswer(e, path, resp)
}

// verifiedAnswer reads the answer to a PURGE with PurgeVerifyHeader.
func verifiedAnswer(e inventory.Edge, path string, resp *http.Response) (r ProbeResult, verified bool, err error) {
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	switch {
	case resp.StatusCode == http.StatusOK && !strings.HasPrefix(reason, "cached age="):
		return ProbeResult{}, false, nil
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound:
		return ProbeResult{}, false, fmt.Errorf("PURGE %s on edge %s: %w", path, e.ID, &StatusError{Code: resp.StatusCode})
	}
	r, err = probeAnswer(e, path, resp)
	return r, err == nil, err
}

// probeAnswer reads a cache-only probe's answer.
func probeAnswer(e inventory.Edge, path string, resp *http.Response) (ProbeResult, error) {
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	switch {
	case resp.StatusCode == http.StatusOK && strings.HasPrefix(reason, "cached age="):
		secs, err := strconv.ParseFloat(strings.TrimPrefix(reason, "cached age="), 64)
		if err != nil {
			return ProbeResult{}, fmt.Errorf("probe %s on edge %s: bad answer %q", path, e.ID, resp.Status)
		}
		return ProbeResult{Fresh: true, Age: time.Duration(secs * float64(time.Second))}, nil
	case resp.StatusCode == http.StatusNotFound: // "stale" or "absent"
		return ProbeResult{}, nil
	case resp.StatusCode == http.StatusOK:
		// An edge VCL without the probe serves the object instead.
		return ProbeResult{}, fmt.Errorf("probe %s on edge %s: answered %q, not a cache-only lookup (edge VCL without the probe?)", path, e.ID, resp.Status)
	}
	return ProbeResult{}, fmt.Errorf("probe %s on edge %s (%s): %w", path, e.ID, resp.Status, &StatusError{Code: resp.StatusCode})
}
