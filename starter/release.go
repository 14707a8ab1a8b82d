package starter

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/internal/cli"
)

// releaseStatus is what GET /v1/releases/{id} and its events answer
// (releaseStatus), as far as the command reads it; raw is the
// answer itself, which --json prints.
type releaseStatus struct {
	ReleaseID  string        `json:"releaseId"`
	State      string        `json:"state"`
	AcceptedAt int64         `json:"acceptedAt"`
	EndedAt    int64         `json:"endedAt"`
	Steps      []releaseStep `json:"steps"`
	Error      string        `json:"error"`
	raw        json.RawMessage
}

type releaseStep struct {
	Name  string           `json:"name"`
	State string           `json:"state"`
	Done  int              `json:"done"`
	Total int              `json:"total"`
	Error string           `json:"error"`
	Edges []releaseReceipt `json:"edges"`
}

type releaseReceipt struct {
	EdgeID   string `json:"edgeId"`
	Answer   string `json:"answer"`
	Verified string `json:"verified"`
	Done     int    `json:"done"`
	Total    int    `json:"total"`
	Error    string `json:"error"`
}

// Release outcomes and step states as the API names them
// (workflows/release.go).
const (
	releaseSucceeded = "SUCCEEDED"
	releaseTimeout   = "TIMEOUT"
	releaseFailed    = "FAILED"
	stepRunning      = "RUNNING"
	stepFailed       = "FAILED"
	stepSkipped      = "SKIPPED"
)

func (st releaseStatus) step(name string) *releaseStep {
	for i := range st.Steps {
		if st.Steps[i].Name == name {
			return &st.Steps[i]
		}
	}
	return nil
}

// releaseFlags are `cdnflow release`'s own flags.
type releaseFlags struct {
	apiKey, appKey, domain         string
	purgeType, purgeFile, urlsFile string
	target, protocol, idem         string
	deadline                       time.Duration
	verify                         bool
}

func parseReleaseFlags(sio IO, args []string, c *common) (releaseFlags, int, bool) {
	fs := flag.NewFlagSet("cdnflow release", flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	c.register(fs)
	// A release is followed to its end unless --wait=false.
	c.wait = true
	fs.Lookup("wait").DefValue = "true"
	var f releaseFlags
	secretVar(fs, &f.apiKey, "api-key", "CDNFLOW_API_KEY", "x-api-key or API token ($CDNFLOW_API_KEY)")
	fs.StringVar(&f.appKey, "app-key", envOr("CDNFLOW_APP_KEY", ""), "the appKey whose distribution is released ($CDNFLOW_APP_KEY)")
	fs.StringVar(&f.domain, "domain", "", "the distribution's domain: purged, and /paths of --urls-file are expanded on it")
	fs.StringVar(&f.purgeType, "purge-type", "ITEM", "ITEM, WILDCARD, ALL or TAG")
	fs.StringVar(&f.purgeFile, "purge-list", "", "file with one path, pattern or tag per line (- reads stdin); with --purge-type ALL: none")
	fs.StringVar(&f.urlsFile, "urls-file", "", "file with one URL (or /path) per line to prewarm and verify (- reads stdin)")
	fs.StringVar(&f.target, "target", "region:all", "prewarm targets: pop:ID,ID | region:us,eu | country:japan | region:all")
	fs.StringVar(&f.protocol, "protocol", "http", "http or https")
	fs.DurationVar(&f.deadline, "deadline", 30*time.Minute, "the whole release's deadline (TIMEOUT after it)")
	fs.StringVar(&f.idem, "idempotency-key", "", "same key, same release (e.g. the pipeline run id)")
	fs.BoolVar(&f.verify, "verify", true, "after the prewarm, GET every URL through every targeted edge and require a HIT")
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return f, exitParse(err), false
	}
	if f.appKey == "" || f.domain == "" || (f.urlsFile == "" && f.purgeFile == "" && f.purgeType != "ALL") {
		return f, exitParse(cli.Usagef(fs, "cdnflow release needs --app-key, --domain, and --purge-list and/or --urls-file")), false
	}
	return f, 0, true
}

// body is the POST /v1/releases body of the flags.
func (f releaseFlags) body(sio IO) (map[string]any, error) {
	body := map[string]any{"appKey": f.appKey, "deadline": f.deadline.String(), "verify": f.verify}
	if f.purgeFile != "" || strings.EqualFold(f.purgeType, "ALL") {
		var list []string
		if f.purgeFile != "" {
			var err error
			if list, err = readList(f.purgeFile, sio.In); err != nil {
				return nil, fmt.Errorf("--purge-list: %w", err)
			}
		}
		body["purge"] = map[string]any{"domain": f.domain, "purgeType": strings.ToUpper(f.purgeType), "purgeList": strings.Join(list, "\n")}
	}
	if f.urlsFile != "" {
		urls, err := readList(f.urlsFile, sio.In)
		if err != nil {
			return nil, fmt.Errorf("--urls-file: %w", err)
		}
		targetType, region, ok := strings.Cut(f.target, ":")
		if !ok {
			return nil, errors.New("--target must look like region:us,eu or pop:ATL56-C1")
		}
		pw := map[string]any{"url_list": expandPaths(urls, f.protocol, f.domain), "cf_domain": f.domain, "protocol": f.protocol, "target_type": targetType}
		pw["region"] = "all"
		if region != "all" {
			pw["region"] = strings.Split(region, ",")
		}
		body["prewarm"] = pw
	}
	return body, nil
}

// Release is `cdnflow release`: it starts a release (POST /v1/releases)
// and follows its events (GET /v1/releases/{id}/events) with a progress bar
// of every step's units (rate and time left), then prints the outcome and
// exits 0 (SUCCEEDED), 2 (finished, but URLs failed or were not a HIT), 3
// (TIMEOUT, or --wait-timeout passed), 4 (a step could not run, or
// cancelled), 1 (refused, API unreachable).
func Release(ctx context.Context, sio IO, args []string) int {
	var c common
	f, code, ok := parseReleaseFlags(sio, args, &c)
	if !ok {
		return code
	}
	body, err := f.body(sio)
	if err != nil {
		sio.errf("cdnflow release: %v\n", err)
		return ExitError
	}
	h := http.Header{}
	if f.apiKey != "" {
		h.Set("x-api-key", f.apiKey)
	}
	if f.idem != "" {
		h.Set("Idempotency-Key", f.idem)
	}
	base := strings.TrimRight(c.api, "/") + "/v1/releases"
	var started struct {
		ReleaseID string `json:"releaseId"`
	}
	code, raw, err := doJSON(ctx, sio, http.MethodPost, base, h, body, &started)
	if err != nil || code != http.StatusAccepted {
		sio.errf("cdnflow release: refused (HTTP %d): %s %v\n", code, strings.TrimSpace(string(raw)), errOrEmpty(err))
		return ExitError
	}
	sio.errf("release %s started\n", started.ReleaseID)
	if !c.wait {
		return printJSON(sio, c.asJSON, map[string]any{"releaseId": started.ReleaseID}, ExitOK)
	}
	return followRelease(ctx, sio, c, h, base+"/"+url.PathEscape(started.ReleaseID))
}

// followRelease reads the release's event stream until its done event,
// connecting again (after --interval) when the stream breaks, up to
// --wait-timeout.
func followRelease(ctx context.Context, sio IO, c common, h http.Header, releaseURL string) int {
	bar := &progress{io: sio, label: "release", unit: "units"}
	seen := map[string]int{} // each step's most units done so far
	deadline := time.Now().Add(c.waitFor)
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for {
		st, done, err := readReleaseEvents(sctx, sio, h, releaseURL, bar, seen)
		if done {
			bar.finish()
			return printRelease(sio, c, st)
		}
		switch {
		case ctx.Err() != nil:
			bar.finish()
			return ExitError
		case time.Now().After(deadline):
			bar.finish()
			sio.errf("gave up waiting after %s; the release goes on\n", c.waitFor)
			return ExitTimeout
		case err != nil && !retryable(err):
			bar.finish()
			sio.errf("cdnflow release: %v\n", err)
			return ExitError
		}
		select {
		case <-sctx.Done():
		case <-time.After(c.interval):
		}
	}
}

// streamError is a refusal of the event stream (HTTP status, body).
type streamError struct {
	code int
	body string
}

func (e *streamError) Error() string { return fmt.Sprintf("events: HTTP %d: %s", e.code, e.body) }

// retryable: a broken stream or a 5xx/429 is read again; other refusals
// (unknown release, no scope) end the command.
func retryable(err error) bool {
	var se *streamError
	return !errors.As(err, &se) || se.code >= 500 || se.code == http.StatusTooManyRequests
}

// readReleaseEvents reads one connection's events into bar; done is true
// with the final status once the done event came.
func readReleaseEvents(ctx context.Context, sio IO, h http.Header, releaseURL string, bar *progress, seen map[string]int) (releaseStatus, bool, error) {
	var st releaseStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, releaseURL+"/events", nil)
	if err != nil {
		return st, false, fmt.Errorf("events request: %w", err)
	}
	req.Header = h.Clone()
	req.Header.Set("Accept", "text/event-stream")
	// The stream lasts as long as the release: no client timeout.
	hc := &http.Client{}
	if sio.Client != nil {
		hc.Transport = sio.Client.Transport
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, false, fmt.Errorf("events: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := readAll(resp.Body)
		return st, false, &streamError{code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && (event == "progress" || event == "done"):
			data := []byte(strings.TrimPrefix(line, "data: "))
			st = releaseStatus{raw: data}
			if err := json.Unmarshal(data, &st); err != nil {
				return st, false, fmt.Errorf("event data: %w", err)
			}
			done, total, detail := releaseProgress(st, seen)
			bar.update(done, total, detail)
			if event == "done" {
				return st, true, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, false, fmt.Errorf("events: %w", err)
	}
	return st, false, errors.New("events: the stream ended before the release did")
}

// releaseProgress sums the units of every step that runs, and names the
// step running. A step's count never goes back (seen keeps its most): a
// running prewarm's live count can drop while a killed worker's chunk is
// retried from its last heartbeat.
func releaseProgress(st releaseStatus, seen map[string]int) (done, total int, detail string) {
	var parts []string
	for i := range st.Steps {
		s := &st.Steps[i]
		if s.State == stepSkipped {
			continue
		}
		s.Done = max(s.Done, seen[s.Name])
		seen[s.Name] = s.Done
		done, total = done+s.Done, total+s.Total
		if s.State == stepRunning {
			parts = append(parts, fmt.Sprintf("%s %d/%d", s.Name, s.Done, s.Total))
		}
	}
	return done, total, strings.Join(parts, ", ")
}

// printRelease prints the outcome and answers the exit code.
func printRelease(sio IO, c common, st releaseStatus) int {
	code := releaseExit(st)
	if c.asJSON {
		return printJSON(sio, true, st.raw, code)
	}
	took := time.Duration(st.EndedAt-st.AcceptedAt) * time.Millisecond
	if err := sio.outf("release %s %s in %s %s\n", st.ReleaseID, st.State, took, st.Error); err != nil {
		return outputFailed(sio, err)
	}
	for _, s := range st.Steps {
		if err := sio.outf("  %-8s %-9s %d/%d %s\n", s.Name, s.State, s.Done, s.Total, s.Error); err != nil {
			return outputFailed(sio, err)
		}
		for _, e := range s.Edges {
			if err := sio.outf("    %-12s %d/%d %s %s %s\n", e.EdgeID, e.Done, e.Total, e.Answer, e.Verified, e.Error); err != nil {
				return outputFailed(sio, err)
			}
		}
	}
	return code
}

// releaseExit: 0 SUCCEEDED; 3 TIMEOUT; 2 FAILED in the prewarm or verify
// step after some pairs were done (URLs failed or not a HIT); 4 otherwise.
func releaseExit(st releaseStatus) int {
	switch st.State {
	case releaseSucceeded:
		return ExitOK
	case releaseTimeout:
		return ExitTimeout
	case releaseFailed:
		for _, name := range []string{"prewarm", "verify"} {
			if s := st.step(name); s != nil && s.State == stepFailed && s.Done > 0 {
				return ExitPartial
			}
		}
	}
	return ExitJobFailed
}
