// Package varnishadm speaks the Varnish CLI protocol (varnishd -T) so
// cdnflow can load VCL and issue bans without shelling out to varnishadm.
//
// Every response is a line "SSS LLLLLLLL\n" (status, body length) followed by
// the body and a newline. A connection starts with status 107 and a
// challenge when the edge has a secret (-S); the answer is the SHA-256 of
// challenge, newline, secret, challenge, newline.
package varnishadm

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CLI status codes that matter to callers.
const (
	StatusOK        = 200
	StatusAuth      = 107
	StatusCantParse = 101
	StatusUnknown   = 102
	StatusCant      = 300
	StatusComms     = 400
)

// Error is a non-200 answer of the CLI.
type Error struct {
	Status int
	Body   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("varnish cli status %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// Conn is one authenticated CLI connection. Its methods are safe for
// concurrent use; commands are serialised because the protocol is.
type Conn struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	// Banner is the greeting after authentication.
	Banner string
	// broken is the I/O error that desynchronised the session.
	broken error
}

func (c *Conn) fail(err error) {
	c.broken = err
	_ = c.conn.Close()
}

// DialSecretFile reads the secret from path and dials addr.
func DialSecretFile(ctx context.Context, addr, path string) (*Conn, error) {
	secret, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read varnish secret %s: %w", path, err)
	}
	return Dial(ctx, addr, secret)
}

// Dial connects to a varnishd admin port and authenticates with secret
// (the exact bytes of the -S file).
func Dial(ctx context.Context, addr string, secret []byte) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial varnish cli %s: %w", addr, err)
	}
	c := &Conn{conn: nc, r: bufio.NewReader(nc)}
	if err := c.handshake(ctx, addr, secret); err != nil {
		_ = nc.Close() // the handshake's error is the one to report
		return nil, err
	}
	return c, nil
}

// handshake reads the CLI's greeting, answers its auth challenge with
// secret and keeps the banner.
func (c *Conn) handshake(ctx context.Context, addr string, secret []byte) error {
	if err := c.setDeadline(ctx, 10*time.Second); err != nil {
		return err
	}
	status, body, err := c.read()
	if err != nil {
		return fmt.Errorf("varnish cli %s greeting: %w", addr, err)
	}
	if status == StatusAuth {
		challenge, _, _ := strings.Cut(body, "\n")
		if len(challenge) != 32 {
			return fmt.Errorf("varnish cli %s: malformed challenge", addr)
		}
		h := sha256.New()
		h.Write([]byte(challenge + "\n"))
		h.Write(secret)
		h.Write([]byte(challenge + "\n"))
		if _, err := fmt.Fprintf(c.conn, "auth %s\n", hex.EncodeToString(h.Sum(nil))); err != nil {
			return fmt.Errorf("varnish cli %s auth: %w", addr, err)
		}
		status, body, err = c.read()
		if err != nil {
			return fmt.Errorf("varnish cli %s auth: %w", addr, err)
		}
	}
	if status != StatusOK {
		return fmt.Errorf("varnish cli %s: authentication failed: %w", addr, &Error{Status: status, Body: body})
	}
	c.Banner = body
	return nil
}

// Close ends the session.
func (c *Conn) Close() error { return c.conn.Close() }

func (c *Conn) setDeadline(ctx context.Context, def time.Duration) error {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(def)
	}
	if err := c.conn.SetDeadline(dl); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	return nil
}

func (c *Conn) read() (int, string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return 0, "", fmt.Errorf("read status: %w", err)
	}
	fields := strings.Fields(line)
	if len(fields) != 2 {
		return 0, "", fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0, "", fmt.Errorf("bad status %q", fields[0])
	}
	n, err := strconv.Atoi(fields[1])
	if err != nil || n < 0 {
		return 0, "", fmt.Errorf("bad length %q", fields[1])
	}
	body := make([]byte, n+1) // body and its trailing newline
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, "", fmt.Errorf("read body: %w", err)
	}
	return status, string(body[:n]), nil
}

// Do runs one command and returns its body; a non-200 status is an *Error.
func (c *Conn) Do(ctx context.Context, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("no command")
	}
	var b strings.Builder
	b.WriteString(args[0])
	for _, a := range args[1:] {
		b.WriteByte(' ')
		b.WriteString(quote(a))
	}
	b.WriteByte('\n')
	return c.send(ctx, args[0], b.String())
}

// doHeredoc sends the last argument as a here-document, which needs no
// escaping, so VCL of any size and content passes through unchanged.
func (c *Conn) doHeredoc(ctx context.Context, args []string, doc string) (string, error) {
	token := heredocToken(doc)
	var b strings.Builder
	b.WriteString(args[0])
	for _, a := range args[1:] {
		b.WriteByte(' ')
		b.WriteString(quote(a))
	}
	b.WriteString(" << " + token + "\n")
	b.WriteString(doc)
	if !strings.HasSuffix(doc, "\n") {
		b.WriteByte('\n')
	}
	b.WriteString(token + "\n")
	return c.send(ctx, args[0], b.String())
}

func (c *Conn) send(ctx context.Context, name, wire string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return "", fmt.Errorf("varnish cli %s: connection unusable after earlier error: %w", name, c.broken)
	}
	if err := c.setDeadline(ctx, 60*time.Second); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c.conn, wire); err != nil {
		c.fail(err)
		return "", fmt.Errorf("varnish cli %s: write: %w", name, err)
	}
	status, body, err := c.read()
	if err != nil {
		// A half-read answer would be taken for the next command's.
		c.fail(err)
		return "", fmt.Errorf("varnish cli %s: %w", name, err)
	}
	if status != StatusOK {
		return body, fmt.Errorf("varnish cli %s: %w", name, &Error{Status: status, Body: body})
	}
	return body, nil
}

// quote makes one CLI argument: bare when safe, else a double-quoted string
// with backslash escapes, as the CLI's tokenizer expects.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\r\"\\{}<>") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func heredocToken(doc string) string {
	for {
		buf := make([]byte, 8)
		_, _ = rand.Read(buf)
		tok := "CDNFLOW_" + strings.ToUpper(hex.EncodeToString(buf))
		if !strings.Contains(doc, tok) {
			return tok
		}
	}
}

// Ping checks the session is alive.
func (c *Conn) Ping(ctx context.Context) error {
	_, err := c.Do(ctx, "ping")
	return err
}

// VCLInline compiles src under name (it does not activate it).
func (c *Conn) VCLInline(ctx context.Context, name, src string) error {
	_, err := c.doHeredoc(ctx, []string{"vcl.inline", name}, src)
	return err
}

// VCLUse activates a loaded VCL.
func (c *Conn) VCLUse(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "vcl.use", name)
	return err
}

// VCLDiscard unloads an inactive VCL.
func (c *Conn) VCLDiscard(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "vcl.discard", name)
	return err
}

// VCLInfo is one entry of vcl.list.
type VCLInfo struct {
	Name string
	// Status is "active", "available" or "discarded".
	Status string
	// State is "auto", "warm", "cold" or "label".
	State string
	// Temperature is "init", "cold", "warm", "busy" or "cooling".
	Temperature string
	// Busy counts requests and objects still using the VCL.
	Busy int
	// LabelOf names the VCL a label points to.
	LabelOf string
}

// VCLList lists loaded VCLs. It asks for JSON because the text columns
// changed between Varnish releases.
func (c *Conn) VCLList(ctx context.Context) ([]VCLInfo, error) {
	body, err := c.Do(ctx, "vcl.list", "-j")
	if err != nil {
		return nil, err
	}
	return parseVCLList(body)
}

func parseVCLList(body string) ([]VCLInfo, error) {
	var top []json.RawMessage
	if err := json.Unmarshal([]byte(body), &top); err != nil {
		return nil, fmt.Errorf("parse vcl.list -j: %w", err)
	}
	if len(top) < 3 {
		return nil, fmt.Errorf("parse vcl.list -j: %d elements, want at least 3", len(top))
	}
	out := make([]VCLInfo, 0, len(top)-3)
	for _, raw := range top[3:] {
		var e struct {
			Name        string `json:"name"`
			Status      string `json:"status"`
			State       string `json:"state"`
			Temperature string `json:"temperature"`
			Busy        int    `json:"busy"`
			Label       *struct {
				Name string `json:"name"`
			} `json:"label"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("parse vcl.list -j entry: %w", err)
		}
		info := VCLInfo{Name: e.Name, Status: e.Status, State: e.State, Temperature: e.Temperature, Busy: e.Busy}
		if e.Label != nil {
			info.LabelOf = e.Label.Name
		}
		out = append(out, info)
	}
	return out, nil
}

// Ban adds a ban expression through the CLI. Its words are passed as
// separate arguments, the form varnishd's ban parser takes apart reliably.
func (c *Conn) Ban(ctx context.Context, expr string) error {
	_, err := c.Do(ctx, append([]string{"ban"}, strings.Fields(expr)...)...)
	return err
}

// BanList returns the edge's ban list as text.
func (c *Conn) BanList(ctx context.Context) (string, error) {
	return c.Do(ctx, "ban.list")
}

// ManagedPrefix marks the VCLs cdnflow loads; others are never discarded.
const ManagedPrefix = "cdnflow_"

// ManagedName is the content-addressed name of VCL source src: ManagedPrefix
// and 12 hex digits of its SHA-256. Equal sources get equal names, so an
// edge booted with a VCL under this name (varnishd.Options.VCLName) is
// already as the edge sync wants it.
func ManagedName(src string) string {
	sum := sha256.Sum256([]byte(src))
	return ManagedPrefix + hex.EncodeToString(sum[:6])
}

// Reload compiles src as name, makes it active and discards the VCLs
// cdnflow loaded before that are no longer active, so repeated reloads do
// not leak compiled VCL. If compilation fails the active VCL stays as it was.
func (c *Conn) Reload(ctx context.Context, name, src string) error {
	if !strings.HasPrefix(name, ManagedPrefix) {
		name = ManagedPrefix + name
	}
	if err := c.VCLInline(ctx, name, src); err != nil {
		return fmt.Errorf("load vcl %s: %w", name, err)
	}
	if err := c.VCLUse(ctx, name); err != nil {
		return fmt.Errorf("use vcl %s: %w", name, err)
	}
	return c.discardOthers(ctx, name)
}

// Ensure makes the VCL name (holding src) the active one: nothing when it
// is active already, vcl.use when it is loaded, else load and use it;
// other managed VCLs that are not labels are discarded. changed says
// whether the active VCL changed. Names must be content-addressed (one
// name, one source): a loaded name is trusted to hold src.
func (c *Conn) Ensure(ctx context.Context, name, src string) (changed bool, err error) {
	list, err := c.VCLList(ctx)
	if err != nil {
		return false, fmt.Errorf("list vcl: %w", err)
	}
	for _, v := range list {
		if v.Name == name && v.Status == "active" {
			return false, nil
		}
	}
	for _, v := range list {
		if v.Name == name && v.Status != "discarded" {
			if err := c.VCLUse(ctx, name); err != nil {
				return false, fmt.Errorf("use vcl %s: %w", name, err)
			}
			return true, c.discardOthers(ctx, name)
		}
	}
	return true, c.Reload(ctx, name, src)
}

// Active is the name of the active VCL.
func (c *Conn) Active(ctx context.Context) (string, error) {
	list, err := c.VCLList(ctx)
	if err != nil {
		return "", fmt.Errorf("list vcl: %w", err)
	}
	for _, v := range list {
		if v.Status == "active" {
			return v.Name, nil
		}
	}
	return "", nil
}

func (c *Conn) discardOthers(ctx context.Context, keep string) error {
	list, err := c.VCLList(ctx)
	if err != nil {
		return fmt.Errorf("list vcl: %w", err)
	}
	for _, v := range list {
		if v.Name != keep && v.Status == "available" && v.State != "label" && strings.HasPrefix(v.Name, ManagedPrefix) {
			if err := c.VCLDiscard(ctx, v.Name); err != nil {
				return fmt.Errorf("discard vcl %s: %w", v.Name, err)
			}
		}
	}
	return nil
}
