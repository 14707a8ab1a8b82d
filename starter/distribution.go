package starter

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/internal/cli"
)

const distributionUsage = `usage: cdnflow distribution history|diff|rollback|plan --app-key K --secret-key S --domain D [flags]
  history [N]               kept versions, newest first; with N one version and its config
  diff --from A [--to B]    config changes from version A to B (default: the current one)
  rollback --version N      a new version equal to N, rolled out like any change
                            (--immediate skips the waves, --if-match V refuses unless V is current,
                            --wait follows it: exit 0 live, 4 ERROR, 3 timeout)
  plan --version N | --patch-file F   what a rollback or a PATCH (NHN body in F, - for stdin)
                            would change, without changing anything
cdnflow distribution ACTION -h lists the flags`

// distributionFlags are the flags of `cdnflow distribution`.
type distributionFlags struct {
	appKey, secret, domain string
	from, to, version      int
	ifMatch                int
	immediate              bool
	patchFile              string
}

// versionPlan is the API's answer to a rollback or a dry run (service.Plan).
type versionPlan struct {
	DryRun    bool          `json:"dryRun"`
	From      int           `json:"from"`
	Version   int           `json:"version"`
	Suspended bool          `json:"suspended"`
	Diff      []configDelta `json:"diff"`
}

type configDelta struct {
	Path string `json:"path"`
	From any    `json:"from"`
	To   any    `json:"to"`
}

// Distribution is `cdnflow distribution history|diff|rollback|plan`: a
// distribution's versions through the /v1 API, authenticated with the
// appKey and its SecretKey like the NHN API.
func Distribution(ctx context.Context, sio IO, args []string) int {
	if len(args) == 0 {
		sio.errf("%s\n", distributionUsage)
		return ExitUsage
	}
	verb, args := args[0], args[1:]
	switch verb {
	case "history", "diff", "rollback", "plan":
	case "-h", "-help", "--help", "help":
		sio.errf("%s\n", distributionUsage)
		return ExitOK
	default:
		sio.errf("cdnflow distribution: unknown action %q\n%s\n", verb, distributionUsage)
		return ExitUsage
	}
	var c common
	f, pos, code, ok := parseDistributionFlags(sio, verb, args, &c)
	if !ok {
		return code
	}
	base := strings.TrimRight(c.api, "/") + "/v1/appKeys/" + url.PathEscape(f.appKey) + "/distributions/" + url.PathEscape(f.domain)
	h := http.Header{"Authorization": {f.secret}}
	if f.ifMatch > 0 {
		h.Set("If-Match", strconv.Quote(strconv.Itoa(f.ifMatch)))
	}
	dc := distributionCall{ctx: ctx, sio: sio, c: c, f: f, verb: verb, base: base, h: h}
	switch verb {
	case "history":
		return dc.history(pos)
	case "diff":
		return dc.diff()
	case "plan":
		return dc.plan()
	}
	return dc.rollback()
}

// distributionCall is one `cdnflow distribution` action against the /v1
// routes of one distribution (base), with its headers.
type distributionCall struct {
	ctx  context.Context
	sio  IO
	c    common
	f    distributionFlags
	verb string
	base string
	h    http.Header
}

// call sends one request; false (after printing why) unless it got 2xx.
func (d distributionCall) call(method, target string, body, out any) bool {
	status, raw, err := doJSON(d.ctx, d.sio, method, target, d.h, body, out)
	if err != nil || status >= 300 {
		d.sio.errf("cdnflow distribution %s: HTTP %d %s %s\n", d.verb, status, strings.TrimSpace(string(raw)), errOrEmpty(err))
		return false
	}
	return true
}

// history prints the kept versions (a table), or one (pos[0]) as JSON.
func (d distributionCall) history(pos []string) int {
	target := d.base + "/versions"
	if len(pos) == 1 {
		target += "/" + url.PathEscape(pos[0])
	}
	var out any
	if !d.call(http.MethodGet, target, nil, &out) {
		return ExitError
	}
	if d.c.asJSON || len(pos) == 1 {
		return printJSON(d.sio, true, out, ExitOK)
	}
	return printHistory(d.sio, out)
}

// diff prints the config diff between --from and --to (default: current).
func (d distributionCall) diff() int {
	target := d.base + "/versions/diff?from=" + strconv.Itoa(d.f.from)
	if d.f.to > 0 {
		target += "&to=" + strconv.Itoa(d.f.to)
	}
	var out struct {
		From, To int
		Diff     []configDelta
	}
	if !d.call(http.MethodGet, target, nil, &out) {
		return ExitError
	}
	if d.c.asJSON {
		return printJSON(d.sio, true, out, ExitOK)
	}
	return printDiff(d.sio, fmt.Sprintf("version %d → %d", out.From, out.To), out.Diff)
}

// plan prints what a PATCH (--patch-file) or a rollback (--version) would
// change, without applying it (?dryRun=true).
func (d distributionCall) plan() int {
	var p versionPlan
	if d.f.patchFile != "" {
		body, err := readJSONFile(d.f.patchFile, d.sio)
		if err != nil {
			d.sio.errf("cdnflow distribution plan: %v\n", err)
			return ExitError
		}
		if !d.call(http.MethodPatch, d.base+"?dryRun=true", body, &p) {
			return ExitError
		}
	} else if !d.call(http.MethodPost, d.base+"/rollback?dryRun=true", map[string]any{"version": d.f.version}, &p) {
		return ExitError
	}
	if d.c.asJSON {
		return printJSON(d.sio, true, p, ExitOK)
	}
	return printDiff(d.sio, fmt.Sprintf("version %d → %d (not applied)", p.From, p.Version), p.Diff)
}

// rollback asks for a new version equal to --version and, with --wait,
// follows it until it is live or failed.
func (d distributionCall) rollback() int {
	var p versionPlan
	if !d.call(http.MethodPost, d.base+"/rollback", map[string]any{"version": d.f.version, "immediate": d.f.immediate}, &p) {
		return ExitError
	}
	d.sio.errf("rollback of %s to version %d accepted as version %d\n", d.f.domain, d.f.version, p.Version)
	if !d.c.wait {
		return printJSON(d.sio, d.c.asJSON, p, ExitOK)
	}
	return waitVersion(d.ctx, d.sio, d.c, d.base, d.h, d.f.domain, p)
}

// waitVersion follows the distribution until version p.Version ended:
// ExitOK when it is live (OPEN or SUSPEND), ExitJobFailed in ERROR or
// when a later change replaced it, ExitTimeout after --wait-timeout.
func waitVersion(ctx context.Context, sio IO, c common, base string, h http.Header, domain string, p versionPlan) int {
	deadline := time.Now().Add(c.waitFor)
	h = h.Clone()
	h.Del("If-Match")
	for {
		var d struct {
			Status    string `json:"status"`
			Version   int    `json:"version"`
			LastError string `json:"lastError"`
		}
		if status, raw, err := doJSON(ctx, sio, http.MethodGet, base, h, nil, &d); err != nil || status != http.StatusOK {
			sio.errf("cdnflow distribution rollback: status: HTTP %d %s %s\n", status, strings.TrimSpace(string(raw)), errOrEmpty(err))
			return ExitError
		}
		summary := map[string]any{"version": p.Version, "status": d.Status, "diff": p.Diff}
		switch {
		case d.Version > p.Version:
			sio.errf("%s: version %d was replaced by version %d before it ended\n", domain, p.Version, d.Version)
			return printJSON(sio, c.asJSON, summary, ExitJobFailed)
		case d.Version == p.Version && d.Status == "ERROR":
			sio.errf("%s: version %d ended in ERROR: %s\n", domain, p.Version, d.LastError)
			summary["lastError"] = d.LastError
			return printJSON(sio, c.asJSON, summary, ExitJobFailed)
		case d.Version == p.Version && (d.Status == "OPEN" || d.Status == "SUSPEND"):
			sio.errf("%s: version %d is live (%s)\n", domain, p.Version, d.Status)
			return printJSON(sio, c.asJSON, summary, ExitOK)
		}
		if time.Now().After(deadline) {
			sio.errf("gave up waiting after %s; the rollback goes on\n", c.waitFor)
			return printJSON(sio, c.asJSON, summary, ExitTimeout)
		}
		select {
		case <-ctx.Done():
			return ExitError
		case <-time.After(c.interval):
		}
	}
}

// parseDistributionFlags parses the command line; ok false: exit with code.
func parseDistributionFlags(sio IO, verb string, args []string, c *common) (f distributionFlags, pos []string, code int, ok bool) {
	fs := flag.NewFlagSet("cdnflow distribution "+verb, flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	c.register(fs)
	fs.StringVar(&f.appKey, "app-key", envOr("CDNFLOW_APP_KEY", ""), "appKey ($CDNFLOW_APP_KEY)")
	secretVar(fs, &f.secret, "secret-key", "CDNFLOW_SECRET_KEY", "SecretKey ($CDNFLOW_SECRET_KEY)")
	fs.StringVar(&f.domain, "domain", "", "distribution domain")
	maxArgs := 0
	switch verb {
	case "history":
		maxArgs = 1
	case "diff":
		fs.IntVar(&f.from, "from", 0, "version to diff from")
		fs.IntVar(&f.to, "to", 0, "version to diff to (default: the current one)")
	case "rollback", "plan":
		fs.IntVar(&f.version, "version", 0, "version to roll back to")
		fs.IntVar(&f.ifMatch, "if-match", 0, "refuse unless this is the current version (412)")
		if verb == "rollback" {
			fs.BoolVar(&f.immediate, "immediate", false, "skip the rollout's waves")
		} else {
			fs.StringVar(&f.patchFile, "patch-file", "", "NHN PATCH body to plan instead of a rollback; - reads stdin")
		}
	}
	pos, err := cli.Parse(fs, args, maxArgs)
	if err != nil {
		return f, nil, exitParse(err), false
	}
	switch {
	case f.appKey == "" || f.domain == "":
		err = cli.Usagef(fs, "cdnflow distribution %s: --app-key and --domain are required", verb)
	case verb == "history" && len(pos) == 1 && !isVersion(pos[0]):
		err = cli.Usagef(fs, "cdnflow distribution history: %q is not a version number", pos[0])
	case verb == "diff" && f.from < 1:
		err = cli.Usagef(fs, "cdnflow distribution diff: --from is required")
	case verb == "rollback" && f.version < 1, verb == "plan" && f.version < 1 && f.patchFile == "":
		err = cli.Usagef(fs, "cdnflow distribution %s: --version is required", verb)
	}
	if err != nil {
		return f, nil, exitParse(err), false
	}
	return f, pos, ExitOK, true
}

func isVersion(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0
}

// readJSONFile reads one JSON value from path, or stdin for "-".
func readJSONFile(path string, sio IO) (any, error) {
	var raw []byte
	var err error
	if path == "-" {
		raw, err = readAll(sio.In)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%s is not JSON: %w", path, err)
	}
	return v, nil
}

// printHistory prints the version list as a table, newest first.
func printHistory(sio IO, out any) int {
	var list struct {
		Versions []struct {
			N          int      `json:"n"`
			At         int64    `json:"at"`
			Action     string   `json:"action"`
			KeyID      string   `json:"keyId"`
			RequestID  string   `json:"requestId"`
			RollbackOf int      `json:"rollbackOf"`
			Changed    []string `json:"changed"`
		} `json:"versions"`
	}
	raw, _ := json.Marshal(out) // decoded from JSON: always encodes
	if err := json.Unmarshal(raw, &list); err != nil {
		sio.errf("cdnflow distribution history: %v\n", err)
		return ExitError
	}
	if err := sio.outf("%-5s %-24s %-9s %-16s %-36s %s\n", "N", "AT (UTC)", "ACTION", "KEY", "REQUEST", "CHANGED"); err != nil {
		return outputFailed(sio, err)
	}
	for _, v := range list.Versions {
		action := v.Action
		if v.RollbackOf > 0 {
			action += " " + strconv.Itoa(v.RollbackOf)
		}
		at := time.UnixMilli(v.At).UTC().Format("2006-01-02T15:04:05.000Z")
		if err := sio.outf("%-5d %-24s %-9s %-16s %-36s %s\n", v.N, at, action, v.KeyID, v.RequestID, strings.Join(v.Changed, ",")); err != nil {
			return outputFailed(sio, err)
		}
	}
	return ExitOK
}

// printDiff prints one line per changed path: "path: from → to".
func printDiff(sio IO, title string, diff []configDelta) int {
	if err := sio.outf("%s: %d change(s)\n", title, len(diff)); err != nil {
		return outputFailed(sio, err)
	}
	for _, d := range diff {
		from, _ := json.Marshal(d.From) // decoded from JSON: always encodes
		to, _ := json.Marshal(d.To)
		if err := sio.outf("  %s: %s → %s\n", d.Path, from, to); err != nil {
			return outputFailed(sio, err)
		}
	}
	return ExitOK
}
