package starter

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

type cronList []string

func (c *cronList) String() string     { return strings.Join(*c, "; ") }
func (c *cronList) Set(v string) error { *c = append(*c, v); return nil }

// Schedule is `cdnflow schedule create|list|get|pause|unpause|trigger|delete`.
func Schedule(ctx context.Context, sio IO, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(sio.Err, "usage: cdnflow schedule create|list|get|pause|unpause|trigger|delete [ID] [flags]")
		return ExitError
	}
	verb, args := args[0], args[1:]
	var id string
	if verb != "create" && verb != "list" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(sio.Err, "usage: cdnflow schedule %s ID\n", verb)
			return ExitError
		}
		id, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("cdnflow schedule "+verb, flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	api := fs.String("api", envOr("CDNFLOW_API_URL", defaultAPIAddress), "cdnflow API base URL ($CDNFLOW_API_URL)")
	apiKey := fs.String("api-key", envOr("CDNFLOW_API_KEY", ""), "x-api-key ($CDNFLOW_API_KEY)")
	var cron cronList
	fs.Var(&cron, "cron", "cron expression (repeatable), e.g. '0 3 * * *'")
	interval := fs.String("interval", "", "every this long, e.g. 6h")
	tz := fs.String("tz", "", "IANA time zone of the cron expressions")
	overlap := fs.String("overlap", "SKIP", "SKIP, BUFFER_ONE, BUFFER_ALL, CANCEL_OTHER, TERMINATE_OTHER or ALLOW_ALL")
	kind := fs.String("kind", "prewarm", "prewarm or purge")
	newID := fs.String("id", "", "schedule id (create)")
	paused := fs.Bool("paused", false, "create paused")
	domain := fs.String("domain", "", "prewarm cf_domain or purge domain")
	listFile := fs.String("list-file", "", "URLs (prewarm) or paths (purge), one per line; - reads stdin")
	target := fs.String("target", "region:all", "prewarm target, as for cdnflow prewarm")
	appKey := fs.String("app-key", envOr("CDNFLOW_APP_KEY", ""), "purge: appKey of the domain")
	purgeType := fs.String("type", "ITEM", "purge type")
	if err := fs.Parse(args); err != nil {
		return ExitError
	}
	base := strings.TrimRight(*api, "/") + "/v1/schedules"
	h := http.Header{}
	if *apiKey != "" {
		h.Set("x-api-key", *apiKey)
	}
	method, target2, body := http.MethodGet, base, any(nil)
	switch verb {
	case "list":
	case "get":
		target2 = base + "/" + url.PathEscape(id)
	case "delete":
		method, target2 = http.MethodDelete, base+"/"+url.PathEscape(id)
	case "pause", "unpause", "trigger":
		method, target2 = http.MethodPost, base+"/"+url.PathEscape(id)+"/"+verb
	case "create":
		req := map[string]any{"id": *newID, "kind": *kind, "overlap": *overlap, "paused": *paused}
		if len(cron) > 0 {
			req["cron"] = []string(cron)
		}
		if *interval != "" {
			req["interval"] = *interval
		}
		if *tz != "" {
			req["timeZone"] = *tz
		}
		var entries []string
		if !(*kind == "purge" && strings.EqualFold(*purgeType, "ALL")) {
			var err error
			if entries, err = readList(*listFile, sio.In); err != nil {
				fmt.Fprintln(sio.Err, "cdnflow schedule create:", err)
				return ExitError
			}
		}
		if *kind == "prewarm" {
			tt, region, _ := strings.Cut(*target, ":")
			p := map[string]any{"url_list": expandPaths(entries, "http", *domain), "cf_domain": *domain, "target_type": tt, "region": strings.Split(region, ",")}
			if region == "all" {
				p["region"] = "all"
			}
			req["prewarm"] = p
		} else {
			req["appKey"] = *appKey
			req["purge"] = map[string]any{"domain": *domain, "purgeType": strings.ToUpper(*purgeType), "purgeList": strings.Join(entries, "\n")}
		}
		method, body = http.MethodPost, req
	default:
		fmt.Fprintf(sio.Err, "cdnflow schedule: unknown action %q\n", verb)
		return ExitError
	}
	var out any
	code, raw, err := doJSON(ctx, sio, method, target2, h, body, &out)
	if err != nil || code >= 300 {
		fmt.Fprintf(sio.Err, "cdnflow schedule %s: HTTP %d %s %s\n", verb, code, strings.TrimSpace(string(raw)), errOrEmpty(err))
		return ExitError
	}
	if len(raw) > 0 {
		fmt.Fprintln(sio.Out, strings.TrimSpace(string(raw)))
	}
	return ExitOK
}
