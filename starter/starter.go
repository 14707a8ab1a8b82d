// Package starter is the pipeline side of cdnflow: `cdnflow prewarm`,
// `cdnflow purge` and `cdnflow status` call the HTTP API (never Temporal),
// so a release pipeline needs only the API's address and a key. With
// --wait they follow the job to its end and exit with a code a pipeline can
// branch on.
package starter

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cdnflow/cdnflow/internal/cli"
)

// Exit codes of the pipeline commands.
const (
	ExitOK            = 0
	ExitError         = 1             // bad input, API unreachable, request refused
	ExitPartial       = 2             // the job finished but some URLs or paths failed
	ExitUsage         = cli.ExitUsage // the command line does not parse (nothing was sent)
	ExitTimeout       = 3             // the job's deadline (or --wait-timeout) passed
	ExitJobFailed     = 4             // the job could not run
	defaultAPIAddress = "http://127.0.0.1:8080"
)

// IO is where a command reads and writes; tests substitute buffers.
type IO struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	IsTTY  bool
	Client *http.Client
}

// StdIO is the process's terminal.
func StdIO() IO {
	tty := false
	if fi, err := os.Stderr.Stat(); err == nil {
		tty = fi.Mode()&os.ModeCharDevice != 0
	}
	return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, IsTTY: tty, Client: &http.Client{Timeout: 60 * time.Second}}
}

// errf writes a diagnostic to Err. Its write error is dropped: Err is the
// only place it could be reported, and the exit code carries the outcome.
func (s IO) errf(format string, args ...any) {
	_, _ = fmt.Fprintf(s.Err, format, args...)
}

// outf writes part of the command's result to Out; a result that cannot be
// written fails the command (see outputFailed).
func (s IO) outf(format string, args ...any) error {
	if _, err := fmt.Fprintf(s.Out, format, args...); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// outputFailed reports a result that could not be written and answers ExitError.
func outputFailed(s IO, err error) int {
	s.errf("cdnflow: %v\n", err)
	return ExitError
}

type common struct {
	api      string
	wait     bool
	asJSON   bool
	interval time.Duration
	waitFor  time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.api, "api", envOr("CDNFLOW_API_URL", defaultAPIAddress), "cdnflow API base URL ($CDNFLOW_API_URL)")
	fs.BoolVar(&c.wait, "wait", false, "follow the job until it ends; the exit code tells how it ended")
	fs.BoolVar(&c.asJSON, "json", false, "print a machine-readable summary on stdout")
	fs.DurationVar(&c.interval, "interval", 2*time.Second, "how often --wait polls")
	fs.DurationVar(&c.waitFor, "wait-timeout", 2*time.Hour, "give up waiting after this long (exit 3)")
}

// exitParse is the exit code of a cli.Parse error: 0 after -h, ExitUsage
// for a command line that does not parse (error and usage printed).
func exitParse(err error) int {
	if code, ok := cli.ExitCode(err); ok {
		return code
	}
	return ExitError
}

// secretVar registers flag name for a secret (an API key, a SecretKey)
// that defaults to $env. Its value is never printed: not as the default in
// -h or after a parse error, where CI logs would keep it.
func secretVar(fs *flag.FlagSet, p *string, name, env, usage string) {
	*p = os.Getenv(env)
	fs.Var((*secretValue)(p), name, usage)
}

// secretValue is a flag.Value that shows nothing of itself.
type secretValue string

func (s *secretValue) String() string     { return "" }
func (s *secretValue) Set(v string) error { *s = secretValue(v); return nil }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// readList reads one entry per line from a file, or stdin for "-".
func readList(path string, stdin io.Reader) ([]string, error) {
	var r io.Reader
	switch path {
	case "":
		return nil, errors.New("a list file is required (use - for stdin)")
	case "-":
		r = stdin
	default:
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		// Read-only: the scan's error is the one that counts.
		defer func() { _ = f.Close() }()
		r = f
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read list: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("the list is empty")
	}
	return out, nil
}

// doJSON sends body (if any) and decodes the answer into out. It returns
// the HTTP status and the raw body for error messages.
func doJSON(ctx context.Context, sio IO, method, url string, header http.Header, body, out any) (int, []byte, error) {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rdr)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := sio.Client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := readAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, data, fmt.Errorf("decode answer of %s: %w", url, err)
		}
	}
	return resp.StatusCode, data, nil
}

func readAll(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

// progress prints a live bar on a terminal and plain lines elsewhere (CI
// logs), at most one line per interval. The bar is
// github.com/schollz/progressbar/v3: count, rate (unit per second) and
// the time left predicted from that rate.
type progress struct {
	io    IO
	label string
	unit  string // what the count counts ("pairs"); "units" when empty
	last  string
	bar   *progressbar.ProgressBar
}

func (p *progress) update(done, total int, detail string) {
	pct := 0
	if total > 0 {
		pct = done * 100 / total
	}
	if p.io.IsTTY {
		if p.bar == nil {
			p.bar = progressbar.NewOptions(max(total, 1), progressbar.OptionSetWriter(p.io.Err),
				progressbar.OptionSetWidth(30), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
				progressbar.OptionSetItsString(cmp.Or(p.unit, "units")), progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowDescriptionAtLineEnd())
		}
		if total > 0 && total != p.bar.GetMax() {
			p.bar.ChangeMax(total)
		}
		p.bar.Describe(strings.TrimSpace(p.label + " " + detail))
		_ = p.bar.Set(done) // writes to Err; its failure has nowhere to go
		return
	}
	line := fmt.Sprintf("%s: %d/%d (%d%%) %s", p.label, done, total, pct, detail)
	if line != p.last {
		p.io.errf("%s\n", line)
		p.last = line
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		// Full only when every unit is done; else the bar stays where it was.
		if st := p.bar.State(); st.CurrentNum >= st.Max {
			_ = p.bar.Finish()
		} else {
			_ = p.bar.Exit()
		}
	}
	if p.io.IsTTY {
		p.io.errf("\n")
	}
}
