package starter

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

type purgeItem struct {
	Seq          int64  `json:"seq"`
	Progress     int    `json:"progress"`
	Type         string `json:"type"`
	PendingEdges []struct {
		EdgeID string `json:"edgeId"`
		Error  string `json:"error"`
	} `json:"pendingEdges"`
}

type nhnHeader struct {
	IsSuccessful  bool   `json:"isSuccessful"`
	ResultCode    int    `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
}

// Purge is `cdnflow purge`: an NHN v1.5 purge request, then with --wait
// the progress of every seq it was split into.
func Purge(ctx context.Context, sio IO, args []string) int {
	fs := flag.NewFlagSet("cdnflow purge", flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	var c common
	c.register(fs)
	appKey := fs.String("app-key", envOr("CDNFLOW_APP_KEY", ""), "appKey ($CDNFLOW_APP_KEY)")
	secret := fs.String("secret-key", envOr("CDNFLOW_SECRET_KEY", ""), "SecretKey ($CDNFLOW_SECRET_KEY)")
	domain := fs.String("domain", "", "distribution domain")
	typ := fs.String("type", "ITEM", "ITEM, WILDCARD, ALL or TAG")
	pathsFile := fs.String("paths-file", "", "file with one path (or tag) per line; - reads stdin; not needed for ALL")
	soft := fs.Bool("soft", false, "soft purge (ITEM, TAG): serve stale while refetching")
	if err := fs.Parse(args); err != nil {
		return ExitError
	}
	if *appKey == "" || *domain == "" {
		fmt.Fprintln(sio.Err, "cdnflow purge: --app-key and --domain are required")
		return ExitError
	}
	body := map[string]any{"domain": *domain, "purgeType": strings.ToUpper(*typ)}
	if *soft {
		body["soft"] = true
	}
	if !strings.EqualFold(*typ, "ALL") {
		paths, err := readList(*pathsFile, sio.In)
		if err != nil {
			fmt.Fprintln(sio.Err, "cdnflow purge:", err)
			return ExitError
		}
		body["purgeList"] = strings.Join(paths, "\n")
	}
	base := strings.TrimRight(c.api, "/") + "/v1.5/appKeys/" + url.PathEscape(*appKey) + "/purges"
	h := http.Header{"Authorization": {*secret}}
	var res struct {
		Header    nhnHeader `json:"header"`
		PurgeSeq  int64     `json:"purgeSeq"`
		PurgeSeqs []int64   `json:"purgeSeqs"`
	}
	_, raw, err := doJSON(ctx, sio, http.MethodPost, base, h, body, &res)
	if err != nil || !res.Header.IsSuccessful {
		fmt.Fprintf(sio.Err, "cdnflow purge: refused (resultCode %d): %s %s\n", res.Header.ResultCode, res.Header.ResultMessage, errOrEmpty(err))
		if err != nil && len(raw) > 0 {
			fmt.Fprintln(sio.Err, string(raw))
		}
		return ExitError
	}
	fmt.Fprintf(sio.Err, "purge accepted: seqs %v\n", res.PurgeSeqs)
	summary := map[string]any{"purgeSeq": res.PurgeSeq, "purgeSeqs": res.PurgeSeqs}
	if !c.wait {
		return printJSON(sio, c.asJSON, summary, ExitOK)
	}
	want := map[int64]bool{}
	for _, s := range res.PurgeSeqs {
		want[s] = true
	}
	bar := &progress{io: sio, label: "purge " + *domain}
	deadline := time.Now().Add(c.waitFor)
	for {
		var list struct {
			Header nhnHeader   `json:"header"`
			Purges []purgeItem `json:"purges"`
		}
		q := fmt.Sprintf("%s?domain=%s&itemsPerPage=1000", base, url.QueryEscape(*domain))
		if _, _, err := doJSON(ctx, sio, http.MethodGet, q, h, nil, &list); err != nil || !list.Header.IsSuccessful {
			bar.finish()
			fmt.Fprintf(sio.Err, "cdnflow purge: status: %s %s\n", list.Header.ResultMessage, errOrEmpty(err))
			return ExitError
		}
		done, sum := 0, 0
		var behind []string
		for _, p := range list.Purges {
			if !want[p.Seq] {
				continue
			}
			sum += p.Progress
			if p.Progress == 100 {
				done++
			}
			for _, e := range p.PendingEdges {
				behind = append(behind, e.EdgeID)
			}
		}
		detail := ""
		if len(behind) > 0 {
			detail = "waiting for " + strings.Join(dedupe(behind), ",")
		}
		bar.update(sum/len(want), 100, detail)
		if done == len(want) {
			bar.finish()
			summary["progress"] = 100
			if !c.asJSON {
				fmt.Fprintf(sio.Out, "purge of %s complete on every edge (seqs %v)\n", *domain, res.PurgeSeqs)
			}
			return printJSON(sio, c.asJSON, summary, ExitOK)
		}
		if time.Now().After(deadline) {
			bar.finish()
			summary["progress"] = sum / len(want)
			summary["pendingEdges"] = dedupe(behind)
			fmt.Fprintf(sio.Err, "gave up waiting after %s; the purge goes on\n", c.waitFor)
			return printJSON(sio, c.asJSON, summary, ExitTimeout)
		}
		select {
		case <-ctx.Done():
			bar.finish()
			return ExitError
		case <-time.After(c.interval):
		}
	}
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
