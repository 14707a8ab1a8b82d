package starter

import (
	"context"
	"flag"
	"net/http"
	"net/url"
	"strings"

	"github.com/cdnflow/cdnflow/internal/cli"
)

const tokenUsage = "usage: cdnflow token create --name N --verbs V[,V] --app-keys K[,K]|'*' [--expires-in 720h] | list | revoke ID [flags]\n"

// tokenFlags are the flags of `cdnflow token`.
type tokenFlags struct {
	api, apiKey, name, verbs, appKeys, expiresIn string
}

// Token is `cdnflow token create|list|revoke`: API tokens through
// /v1/tokens, with an admin credential in --api-key ($CDNFLOW_API_KEY: a
// --api-keys key or an admin token on every appKey). create prints the
// token once (JSON with "token"); only its hash is kept. Exit 0 done, 1
// refused or unreachable, 2 bad command line.
func Token(ctx context.Context, sio IO, args []string) int {
	if len(args) == 0 {
		sio.errf(tokenUsage)
		return ExitUsage
	}
	verb, args := args[0], args[1:]
	switch verb {
	case "create", "list", "revoke":
	case "-h", "-help", "--help", "help":
		sio.errf(tokenUsage)
		return ExitOK
	default:
		sio.errf("cdnflow token: unknown action %q\n%s", verb, tokenUsage)
		return ExitUsage
	}
	var id string
	if verb == "revoke" && !(len(args) > 0 && isHelp(args[0])) {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			sio.errf("usage: cdnflow token revoke ID\n")
			return ExitUsage
		}
		id, args = args[0], args[1:]
	}
	var f tokenFlags
	fs := flag.NewFlagSet("cdnflow token "+verb, flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	fs.StringVar(&f.api, "api", envOr("CDNFLOW_API_URL", defaultAPIAddress), "cdnflow API base URL ($CDNFLOW_API_URL)")
	secretVar(fs, &f.apiKey, "api-key", "CDNFLOW_API_KEY", "x-api-key: a --api-keys key or an admin token ($CDNFLOW_API_KEY)")
	if verb == "create" {
		fs.StringVar(&f.name, "name", "", "what the token is for, e.g. release-pipeline-shop")
		fs.StringVar(&f.verbs, "verbs", "", "comma-separated: prewarm, purge, read, schedule, admin")
		fs.StringVar(&f.appKeys, "app-keys", "", "comma-separated appKeys the token acts on, or '*' for every appKey")
		fs.StringVar(&f.expiresIn, "expires-in", "", "life of the token, a Go duration (default 2160h = 90 days, at most 8784h)")
	}
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return exitParse(err)
	}
	base := strings.TrimRight(f.api, "/") + "/v1/tokens"
	h := http.Header{}
	if f.apiKey != "" {
		h.Set("x-api-key", f.apiKey)
	}
	method, target, body := http.MethodGet, base, any(nil)
	switch verb {
	case "create":
		method, body = http.MethodPost, map[string]any{
			"name": f.name, "verbs": splitList(f.verbs), "appKeys": splitList(f.appKeys), "expiresIn": f.expiresIn,
		}
	case "revoke":
		method, target = http.MethodDelete, base+"/"+url.PathEscape(id)
	}
	code, raw, err := doJSON(ctx, sio, method, target, h, body, nil)
	if err != nil || code >= 300 {
		sio.errf("cdnflow token %s: HTTP %d %s %s\n", verb, code, strings.TrimSpace(string(raw)), errOrEmpty(err))
		return ExitError
	}
	if verb == "revoke" {
		if err := sio.outf("revoked %s\n", id); err != nil {
			return outputFailed(sio, err)
		}
		return ExitOK
	}
	if err := sio.outf("%s\n", strings.TrimSpace(string(raw))); err != nil {
		return outputFailed(sio, err)
	}
	return ExitOK
}

// splitList splits a comma-separated flag, dropping empty entries.
func splitList(v string) []string {
	out := []string{}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
