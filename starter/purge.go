package starter

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/internal/cli"
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

// purgeFlags are the flags of `cdnflow purge` besides the common ones.
type purgeFlags struct {
	appKey, secret, domain, typ, pathsFile string
	soft                                   bool
}

// Purge is `cdnflow purge`: an NHN v1.5 purge request, then with --wait
// the progress of every seq it was split into.
func Purge(ctx context.Context, sio IO, args []string) int {
	var c common
	f, code, ok := parsePurgeFlags(sio, args, &c)
	if !ok {
		return code
	}
	body, err := f.body(sio.In)
	if err != nil {
		sio.errf("cdnflow purge: %v\n", err)
		return ExitError
	}
	base := strings.TrimRight(c.api, "/") + "/v1.5/appKeys/" + url.PathEscape(f.appKey) + "/purges"
	h := http.Header{"Authorization": {f.secret}}
	var res struct {
		Header    nhnHeader `json:"header"`
		PurgeSeq  int64     `json:"purgeSeq"`
		PurgeSeqs []int64   `json:"purgeSeqs"`
	}
	_, raw, err := doJSON(ctx, sio, http.MethodPost, base, h, body, &res)
	if err != nil || !res.Header.IsSuccessful {
		sio.errf("cdnflow purge: refused (resultCode %d): %s %s\n", res.Header.ResultCode, res.Header.ResultMessage, errOrEmpty(err))
		if err != nil && len(raw) > 0 {
			sio.errf("%s\n", raw)
		}
		return ExitError
	}
	sio.errf("purge accepted: seqs %v\n", res.PurgeSeqs)
	summary := map[string]any{"purgeSeq": res.PurgeSeq, "purgeSeqs": res.PurgeSeqs}
	if !c.wait {
		return printJSON(sio, c.asJSON, summary, ExitOK)
	}
	w := purgeWait{c: c, sio: sio, list: fmt.Sprintf("%s?domain=%s&itemsPerPage=1000", base, url.QueryEscape(f.domain)), h: h, domain: f.domain, seqs: res.PurgeSeqs, summary: summary}
	return w.run(ctx)
}

// parsePurgeFlags parses the command line; ok false: exit with code.
func parsePurgeFlags(sio IO, args []string, c *common) (f purgeFlags, code int, ok bool) {
	fs := flag.NewFlagSet("cdnflow purge", flag.ContinueOnError)
	fs.SetOutput(sio.Err)
	c.register(fs)
	fs.StringVar(&f.appKey, "app-key", envOr("CDNFLOW_APP_KEY", ""), "appKey ($CDNFLOW_APP_KEY)")
	secretVar(fs, &f.secret, "secret-key", "CDNFLOW_SECRET_KEY", "SecretKey ($CDNFLOW_SECRET_KEY)")
	fs.StringVar(&f.domain, "domain", "", "distribution domain")
	fs.StringVar(&f.typ, "type", "ITEM", "ITEM, WILDCARD, ALL or TAG")
	fs.StringVar(&f.pathsFile, "paths-file", "", "file with one path (or tag) per line; - reads stdin; not needed for ALL")
	fs.BoolVar(&f.soft, "soft", false, "soft purge (ITEM, TAG): serve stale while refetching")
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return f, exitParse(err), false
	}
	if f.appKey == "" || f.domain == "" {
		return f, exitParse(cli.Usagef(fs, "cdnflow purge: --app-key and --domain are required")), false
	}
	return f, ExitOK, true
}

// body is the NHN purge request; the path list comes from --paths-file
// (or stdin), except for ALL.
func (f purgeFlags) body(stdin io.Reader) (map[string]any, error) {
	body := map[string]any{"domain": f.domain, "purgeType": strings.ToUpper(f.typ)}
	if f.soft {
		body["soft"] = true
	}
	if !strings.EqualFold(f.typ, "ALL") {
		paths, err := readList(f.pathsFile, stdin)
		if err != nil {
			return nil, err
		}
		body["purgeList"] = strings.Join(paths, "\n")
	}
	return body, nil
}

// purgeWait follows the seqs of one purge request until all are at 100%.
type purgeWait struct {
	c       common
	sio     IO
	list    string // purge list URL of the domain
	h       http.Header
	domain  string
	seqs    []int64
	summary map[string]any
}

func (w purgeWait) run(ctx context.Context) int {
	bar := &progress{io: w.sio, label: "purge " + w.domain}
	deadline := time.Now().Add(w.c.waitFor)
	for {
		var list struct {
			Header nhnHeader   `json:"header"`
			Purges []purgeItem `json:"purges"`
		}
		if _, _, err := doJSON(ctx, w.sio, http.MethodGet, w.list, w.h, nil, &list); err != nil || !list.Header.IsSuccessful {
			bar.finish()
			w.sio.errf("cdnflow purge: status: %s %s\n", list.Header.ResultMessage, errOrEmpty(err))
			return ExitError
		}
		done, progress, behind := seqProgress(list.Purges, w.seqs)
		detail := ""
		if len(behind) > 0 {
			detail = "waiting for " + strings.Join(behind, ",")
		}
		bar.update(progress, 100, detail)
		if done {
			bar.finish()
			w.summary["progress"] = 100
			if !w.c.asJSON {
				if err := w.sio.outf("purge of %s complete on every edge (seqs %v)\n", w.domain, w.seqs); err != nil {
					return outputFailed(w.sio, err)
				}
			}
			return printJSON(w.sio, w.c.asJSON, w.summary, ExitOK)
		}
		if time.Now().After(deadline) {
			bar.finish()
			w.summary["progress"] = progress
			w.summary["pendingEdges"] = behind
			w.sio.errf("gave up waiting after %s; the purge goes on\n", w.c.waitFor)
			return printJSON(w.sio, w.c.asJSON, w.summary, ExitTimeout)
		}
		select {
		case <-ctx.Done():
			bar.finish()
			return ExitError
		case <-time.After(w.c.interval):
		}
	}
}

// seqProgress reads the listed purges of seqs: whether every one is at
// 100%, their mean progress (percent) and the edges still behind.
func seqProgress(purges []purgeItem, seqs []int64) (done bool, progress int, behind []string) {
	want := map[int64]bool{}
	for _, s := range seqs {
		want[s] = true
	}
	finished, sum := 0, 0
	for _, p := range purges {
		if !want[p.Seq] {
			continue
		}
		sum += p.Progress
		if p.Progress == 100 {
			finished++
		}
		for _, e := range p.PendingEdges {
			behind = append(behind, e.EdgeID)
		}
	}
	return finished == len(want), sum / len(want), dedupe(behind)
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
