package varnishadm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"boot":          "boot",
		"":              `""`,
		"a b":           `"a b"`,
		`say "hi"`:      `"say \"hi\""`,
		`back\slash`:    `"back\\slash"`,
		"line\nbreak\t": `"line\nbreak\t"`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// Captured from varnishd 7.1 with a label and a cold VCL.
const vclListJSON = `[ 2, ["vcl.list", "-j"], 1795408636.405,
  {"status": "available", "state": "cold", "temperature": "busy", "busy": 1, "name": "boot"},
  {"status": "active", "state": "auto", "temperature": "warm", "busy": 2, "name": "t2", "labels": 1},
  {"status": "available", "state": "label", "temperature": "warm", "busy": 0, "name": "lab", "label": {"name": "t2"}}
]`

func TestParseVCLList(t *testing.T) {
	got, err := parseVCLList(vclListJSON)
	if err != nil {
		t.Fatal(err)
	}
	want := []VCLInfo{
		{Name: "boot", Status: "available", State: "cold", Temperature: "busy", Busy: 1},
		{Name: "t2", Status: "active", State: "auto", Temperature: "warm", Busy: 2},
		{Name: "lab", Status: "available", State: "label", Temperature: "warm", LabelOf: "t2"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if _, err := parseVCLList("not json"); err == nil {
		t.Fatal("garbage accepted")
	}
}

// fakeCLI answers like varnishd: a 107 challenge, then "auth", then one
// scripted command, recording what the client sent.
func fakeCLI(t *testing.T, secret string, handle func(cmd string, r *bufio.Reader) (int, string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() }) // ends a pending Accept
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		// The fake ends with the client's session: a failed write shows in
		// the client under test, and a close error has no one to tell.
		defer func() { _ = c.Close() }()
		r := bufio.NewReader(c)
		write := func(status int, body string) { _, _ = fmt.Fprintf(c, "%-3d %-8d\n%s\n", status, len(body), body) }
		challenge := strings.Repeat("abcdefgh", 4)
		write(107, challenge+"\n\nAuthentication required.\n")
		line, _ := r.ReadString('\n')
		sum := sha256.Sum256([]byte(challenge + "\n" + secret + challenge + "\n"))
		if strings.TrimSpace(line) != "auth "+hex.EncodeToString(sum[:]) {
			write(107, challenge+"\n")
			return
		}
		write(200, "-----------------------------\nVarnish Cache CLI 1.0\n")
		for {
			cmd, err := r.ReadString('\n')
			if err != nil {
				return
			}
			write(handle(strings.TrimSuffix(cmd, "\n"), r))
		}
	}()
	return ln.Addr().String()
}

func TestAuthAndHeredoc(t *testing.T) {
	var got string
	addr := fakeCLI(t, "s3cret\n", func(cmd string, r *bufio.Reader) (int, string) {
		if !strings.HasPrefix(cmd, "vcl.inline cdnflow_x << ") {
			return 101, "unexpected " + cmd
		}
		token := strings.TrimPrefix(cmd, "vcl.inline cdnflow_x << ")
		var body strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil || strings.TrimSuffix(line, "\n") == token {
				break
			}
			body.WriteString(line)
		}
		got = body.String()
		return 106, "VCL compilation failed"
	})
	ctx := context.Background()
	c, err := Dial(ctx, addr, []byte("s3cret\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	src := "vcl 4.1;\n# EOF \"quotes\" \\ and << tokens\n"
	err = c.VCLInline(ctx, "cdnflow_x", src)
	var cliErr *Error
	if !errors.As(err, &cliErr) || cliErr.Status != 106 || !strings.Contains(cliErr.Body, "compilation failed") {
		t.Fatalf("error = %v", err)
	}
	if got != src {
		t.Fatalf("heredoc body = %q, want %q", got, src)
	}
}

func TestAuthWrongSecret(t *testing.T) {
	addr := fakeCLI(t, "right\n", func(string, *bufio.Reader) (int, string) { return 200, "" })
	if _, err := Dial(context.Background(), addr, []byte("wrong\n")); err == nil {
		t.Fatal("wrong secret accepted")
	}
}
