package starter

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/internal/cli"
)

// prewarmStatus is the PrewarmStatus answer: the fields the command reads
// for its exit code and human lines, and raw, the answer's body as the API
// sent it, which --json prints whole (edges[] with the shields' rows, and
// any field the command does not read).
type prewarmStatus struct {
	Status        string   `json:"status"`
	Total         int      `json:"total"`
	Completed     int      `json:"completed"`
	InProgress    int      `json:"inProgress"`
	FailedURL     []string `json:"failedUrl"`
	InProgressURL []string `json:"inProgressUrl"`
	RequestID     string   `json:"requestID"`
	Failed        int      `json:"failed"`
	Succeeded     int      `json:"succeeded"`
	Error         string   `json:"error,omitempty"`
	Message       string   `json:"message,omitempty"`
	Edges         []struct {
		EdgeID string `json:"edgeId"`
		Failed int    `json:"failed"`
		Total  int    `json:"total"`
		Error  string `json:"error,omitempty"`
	} `json:"edges"`
	raw json.RawMessage
}

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// Prewarm is `cdnflow prewarm`.
func Prewarm(ctx context.Context, sio IO, args []string) int {
	fs := flag.NewFlagSet("cdnflow prewarm", flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	var c common
	c.register(fs)
	apiKey := new(string)
	secretVar(fs, apiKey, "api-key", "CDNFLOW_API_KEY", "x-api-key ($CDNFLOW_API_KEY)")
	domain := fs.String("domain", "", "cf_domain: the distribution (its domain or an alias) the URLs are on; /paths are expanded on it")
	urlsFile := fs.String("urls-file", "", "file with one URL (or /path) per line; - reads stdin")
	target := fs.String("target", "region:all", "pop:ID,ID | region:us,eu | country:japan | region:all")
	protocol := fs.String("protocol", "http", "http or https")
	timeout := fs.Duration("timeout", 0, "job deadline (default: the server's, 30m)")
	idem := fs.String("idempotency-key", "", "same key, same job (e.g. the pipeline run id)")
	invalidate := fs.Bool("invalidate", false, "purge each URL on the edges before warming it (need_invalidate)")
	var headers headerList
	fs.Var(&headers, "header", "extra request header 'Name: value' (repeatable)")
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return exitParse(err)
	}
	urls, err := readList(*urlsFile, sio.In)
	if err != nil {
		sio.errf("cdnflow prewarm: %v\n", err)
		return ExitError
	}
	urls = expandPaths(urls, *protocol, *domain)
	targetType, region, ok := strings.Cut(*target, ":")
	if !ok {
		sio.errf("cdnflow prewarm: --target must look like region:us,eu or pop:ATL56-C1\n")
		return ExitError
	}
	body := map[string]any{"url_list": urls, "cf_domain": *domain, "protocol": *protocol, "target_type": targetType, "need_invalidate": *invalidate}
	if region == "all" {
		body["region"] = "all"
	} else {
		body["region"] = strings.Split(region, ",")
	}
	if *timeout > 0 {
		body["timeout"] = timeout.String()
	}
	if len(headers) > 0 {
		body["header"] = []string(headers)
	}
	h := http.Header{}
	if *apiKey != "" {
		h.Set("x-api-key", *apiKey)
	}
	if *idem != "" {
		h.Set("Idempotency-Key", *idem)
	}
	var started struct {
		RequestID string `json:"requestID"`
		Message   string `json:"message"`
	}
	code, raw, err := doJSON(ctx, sio, http.MethodPost, strings.TrimRight(c.api, "/")+"/prewarm", h, body, &started)
	if err != nil || code != http.StatusOK {
		sio.errf("cdnflow prewarm: refused (HTTP %d): %s %v\n", code, strings.TrimSpace(string(raw)), errOrEmpty(err))
		return ExitError
	}
	sio.errf("prewarm %s started: %d URLs\n", started.RequestID, len(urls))
	if !c.wait {
		return printJSON(sio, c.asJSON, map[string]any{"requestID": started.RequestID}, ExitOK)
	}
	return waitPrewarm(ctx, sio, c, h, started.RequestID)
}

// Status is `cdnflow status ID`.
func Status(ctx context.Context, sio IO, args []string) int {
	fs := flag.NewFlagSet("cdnflow status", flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	var c common
	c.register(fs)
	apiKey := new(string)
	secretVar(fs, apiKey, "api-key", "CDNFLOW_API_KEY", "x-api-key ($CDNFLOW_API_KEY)")
	// The id may come before, between or after the flags.
	pos, err := cli.Parse(fs, args, 1)
	if err != nil {
		return exitParse(err)
	}
	if len(pos) == 0 {
		return exitParse(cli.Usagef(fs, "usage: cdnflow status REQUEST_ID [--wait] [--json]"))
	}
	id := pos[0]
	h := http.Header{}
	if *apiKey != "" {
		h.Set("x-api-key", *apiKey)
	}
	if c.wait {
		return waitPrewarm(ctx, sio, c, h, id)
	}
	st, code, err := fetchPrewarm(ctx, sio, c, h, id)
	if err != nil {
		sio.errf("cdnflow status: %v\n", err)
		return ExitError
	}
	return printPrewarm(sio, c, st, code)
}

func fetchPrewarm(ctx context.Context, sio IO, c common, h http.Header, id string) (prewarmStatus, int, error) {
	var st prewarmStatus
	code, raw, err := doJSON(ctx, sio, http.MethodGet, strings.TrimRight(c.api, "/")+"/status?pageSize=1000&requestID="+url.QueryEscape(id), h, nil, &st)
	if err != nil {
		return st, code, err
	}
	if code != http.StatusOK {
		return st, code, fmt.Errorf("HTTP %d: %s", code, strings.TrimSpace(string(raw)))
	}
	st.raw = raw
	return st, code, nil
}

func waitPrewarm(ctx context.Context, sio IO, c common, h http.Header, id string) int {
	bar := &progress{io: sio, label: "prewarm " + id}
	deadline := time.Now().Add(c.waitFor)
	for {
		st, code, err := fetchPrewarm(ctx, sio, c, h, id)
		if err != nil {
			bar.finish()
			sio.errf("cdnflow: %v\n", err)
			return ExitError
		}
		bar.update(st.Completed, st.Total, fmt.Sprintf("failed %d", st.Failed))
		if st.Status != "IN_PROGRESS" {
			bar.finish()
			return printPrewarm(sio, c, st, code)
		}
		if time.Now().After(deadline) {
			bar.finish()
			sio.errf("gave up waiting after %s; the job goes on\n", c.waitFor)
			return ExitTimeout
		}
		select {
		case <-ctx.Done():
			bar.finish()
			return ExitError
		case <-time.After(c.interval):
		}
	}
}

func printPrewarm(sio IO, c common, st prewarmStatus, _ int) int {
	code := ExitOK
	switch {
	case st.Status == "TIMEOUT":
		code = ExitTimeout
	case st.Status == "FAILED":
		code = ExitJobFailed
	case st.Status == "COMPLETED" && st.Failed > 0:
		code = ExitPartial
	}
	if !c.asJSON {
		if err := sio.outf("%s %s: %d/%d completed, %d failed\n", st.RequestID, st.Status, st.Completed, st.Total, st.Failed); err != nil {
			return outputFailed(sio, err)
		}
		for _, u := range st.FailedURL {
			if err := sio.outf("  failed: %s\n", u); err != nil {
				return outputFailed(sio, err)
			}
		}
		if err := printEdgeFailures(sio, st); err != nil {
			return outputFailed(sio, err)
		}
		return code
	}
	var body bytes.Buffer
	if err := json.Indent(&body, st.raw, "", "  "); err != nil {
		return outputFailed(sio, fmt.Errorf("status answer: %w", err))
	}
	if err := sio.outf("%s\n", body.Bytes()); err != nil {
		return outputFailed(sio, err)
	}
	return code
}

// printEdgeFailures writes a line per edge row (edges[]) with failed
// pairs or an error: a shield's failures show there, as a URL only a
// shield failed is not failed (docs/tiers.md).
func printEdgeFailures(sio IO, st prewarmStatus) error {
	for _, e := range st.Edges {
		if e.Failed == 0 && e.Error == "" {
			continue
		}
		line := fmt.Sprintf("  edge %s: %d of %d failed", e.EdgeID, e.Failed, e.Total)
		if e.Error != "" {
			line += " (" + e.Error + ")"
		}
		if err := sio.outf("%s\n", line); err != nil {
			return err
		}
	}
	return nil
}

func printJSON(sio IO, asJSON bool, v any, code int) int {
	if asJSON {
		enc := json.NewEncoder(sio.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return outputFailed(sio, fmt.Errorf("write output: %w", err))
		}
	}
	return code
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// expandPaths turns bare "/path" entries into URLs on domain, so a list of
// changed files can be piped in as it is.
func expandPaths(entries []string, scheme, domain string) []string {
	out := make([]string, len(entries))
	for i, u := range entries {
		if strings.HasPrefix(u, "/") && domain != "" {
			u = scheme + "://" + domain + u
		}
		out[i] = u
	}
	return out
}
