package starter

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/cdnflow/cdnflow/internal/cli"
)

type cronList []string

func (c *cronList) String() string     { return strings.Join(*c, "; ") }
func (c *cronList) Set(v string) error { *c = append(*c, v); return nil }

// scheduleFlags are the flags of `cdnflow schedule`; most only shape a
// create.
type scheduleFlags struct {
	api, apiKey                 string
	cron                        cronList
	interval, tz, overlap, kind string
	id                          string
	paused                      bool
	domain, listFile, target    string
	appKey, purgeType           string
}

// Schedule is `cdnflow schedule create|list|get|pause|unpause|trigger|delete`.
func Schedule(ctx context.Context, sio IO, args []string) int {
	if len(args) == 0 {
		sio.errf("usage: cdnflow schedule create|list|get|pause|unpause|trigger|delete [ID] [flags]\n")
		return ExitUsage
	}
	verb, args := args[0], args[1:]
	switch verb {
	case "create", "list", "get", "pause", "unpause", "trigger", "delete":
	case "-h", "-help", "--help", "help":
		sio.errf("usage: cdnflow schedule create|list|get|pause|unpause|trigger|delete [ID] [flags]; cdnflow schedule ACTION -h lists the flags\n")
		return ExitOK
	default:
		sio.errf("cdnflow schedule: unknown action %q\nusage: cdnflow schedule create|list|get|pause|unpause|trigger|delete [ID] [flags]\n", verb)
		return ExitUsage
	}
	var id string
	if verb != "create" && verb != "list" && !(len(args) > 0 && isHelp(args[0])) {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			sio.errf("usage: cdnflow schedule %s ID\n", verb)
			return ExitUsage
		}
		id, args = args[0], args[1:]
	}
	f, code, ok := parseScheduleFlags(sio, verb, args)
	if !ok {
		return code
	}
	base := strings.TrimRight(f.api, "/") + "/v1/schedules"
	h := http.Header{}
	if f.apiKey != "" {
		h.Set("x-api-key", f.apiKey)
	}
	method, target, body := http.MethodGet, base, any(nil)
	switch verb {
	case "list":
	case "get":
		target = base + "/" + url.PathEscape(id)
	case "delete":
		method, target = http.MethodDelete, base+"/"+url.PathEscape(id)
	case "pause", "unpause", "trigger":
		method, target = http.MethodPost, base+"/"+url.PathEscape(id)+"/"+verb
	case "create":
		req, err := f.createRequest(sio.In)
		if err != nil {
			sio.errf("cdnflow schedule create: %v\n", err)
			return ExitError
		}
		method, body = http.MethodPost, req
	default:
		sio.errf("cdnflow schedule: unknown action %q\n", verb)
		return ExitError
	}
	var out any
	code, raw, err := doJSON(ctx, sio, method, target, h, body, &out)
	if err != nil || code >= 300 {
		sio.errf("cdnflow schedule %s: HTTP %d %s %s\n", verb, code, strings.TrimSpace(string(raw)), errOrEmpty(err))
		return ExitError
	}
	if len(raw) > 0 {
		if err := sio.outf("%s\n", strings.TrimSpace(string(raw))); err != nil {
			return outputFailed(sio, err)
		}
	}
	return ExitOK
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

// parseScheduleFlags parses the command line; ok false: exit with code.
func parseScheduleFlags(sio IO, verb string, args []string) (f scheduleFlags, code int, ok bool) {
	fs := flag.NewFlagSet("cdnflow schedule "+verb, flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	fs.StringVar(&f.api, "api", envOr("CDNFLOW_API_URL", defaultAPIAddress), "cdnflow API base URL ($CDNFLOW_API_URL)")
	secretVar(fs, &f.apiKey, "api-key", "CDNFLOW_API_KEY", "x-api-key ($CDNFLOW_API_KEY)")
	fs.Var(&f.cron, "cron", "cron expression (repeatable), e.g. '0 3 * * *'")
	fs.StringVar(&f.interval, "interval", "", "every this long, e.g. 6h")
	fs.StringVar(&f.tz, "tz", "", "IANA time zone of the cron expressions")
	fs.StringVar(&f.overlap, "overlap", "SKIP", "SKIP, BUFFER_ONE, BUFFER_ALL, CANCEL_OTHER, TERMINATE_OTHER or ALLOW_ALL")
	fs.StringVar(&f.kind, "kind", "prewarm", "prewarm or purge")
	fs.StringVar(&f.id, "id", "", "schedule id (create)")
	fs.BoolVar(&f.paused, "paused", false, "create paused")
	fs.StringVar(&f.domain, "domain", "", "prewarm cf_domain or purge domain")
	fs.StringVar(&f.listFile, "list-file", "", "URLs (prewarm) or paths (purge), one per line; - reads stdin")
	fs.StringVar(&f.target, "target", "region:all", "prewarm target, as for cdnflow prewarm")
	fs.StringVar(&f.appKey, "app-key", envOr("CDNFLOW_APP_KEY", ""), "purge: appKey of the domain")
	fs.StringVar(&f.purgeType, "type", "ITEM", "purge type")
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return f, exitParse(err), false
	}
	return f, ExitOK, true
}

// createRequest is the POST /v1/schedules body: timing, then the prewarm
// or purge it starts, with the list read from --list-file (or stdin).
func (f scheduleFlags) createRequest(stdin io.Reader) (map[string]any, error) {
	req := map[string]any{"id": f.id, "kind": f.kind, "overlap": f.overlap, "paused": f.paused}
	if len(f.cron) > 0 {
		req["cron"] = []string(f.cron)
	}
	if f.interval != "" {
		req["interval"] = f.interval
	}
	if f.tz != "" {
		req["timeZone"] = f.tz
	}
	var entries []string
	if !(f.kind == "purge" && strings.EqualFold(f.purgeType, "ALL")) {
		var err error
		if entries, err = readList(f.listFile, stdin); err != nil {
			return nil, err
		}
	}
	if f.kind == "prewarm" {
		tt, region, _ := strings.Cut(f.target, ":")
		p := map[string]any{"url_list": expandPaths(entries, "http", f.domain), "cf_domain": f.domain, "target_type": tt, "region": strings.Split(region, ",")}
		if region == "all" {
			p["region"] = "all"
		}
		req["prewarm"] = p
	} else {
		req["appKey"] = f.appKey
		req["purge"] = map[string]any{"domain": f.domain, "purgeType": strings.ToUpper(f.purgeType), "purgeList": strings.Join(entries, "\n")}
	}
	return req, nil
}
