package varnishd_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge/edgetest"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/edge/varnishd"
)

const minimalVCL = "vcl 4.1;\nbackend b none;\nsub vcl_recv { return (synth(204)); }\n"

func options(t *testing.T, vcl string) varnishd.Options {
	t.Helper()
	dir := t.TempDir()
	httpAddr, err := varnishd.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	adminAddr, err := varnishd.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return varnishd.Options{
		Name: "VD01-C1", WorkDir: filepath.Join(dir, "work"), ListenAddr: httpAddr, AdminAddr: adminAddr,
		SecretFile: filepath.Join(dir, "secret"), VCL: vcl, StorageMB: 16, ReadyTimeout: 30 * time.Second,
	}
}

func TestStartStop(t *testing.T) {
	edgetest.RequireVarnish(t)
	t.Parallel()
	o := options(t, minimalVCL)
	p, err := varnishd.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(o.SecretFile)
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() == 0 {
		t.Fatalf("secret file: %v %v", st, err)
	}
	resp, err := http.Get("http://" + o.ListenAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Fatal("not reaped after Stop")
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(o.SecretFile); err != nil {
		t.Fatalf("Stop removed the secret: %v", err)
	}
}

func TestStartReportsVCLErrors(t *testing.T) {
	edgetest.RequireVarnish(t)
	t.Parallel()
	o := options(t, "vcl 4.1;\nsub vcl_recv { this is not vcl }\n")
	start := time.Now()
	_, err := varnishd.Start(context.Background(), o)
	if err == nil {
		t.Fatal("started with broken VCL")
	}
	if !strings.Contains(err.Error(), "VCL compilation failed") {
		t.Fatalf("error lacks varnishd's output: %v", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("took %s to notice varnishd died", time.Since(start))
	}
}

func TestErrNotInstalled(t *testing.T) {
	err := error(varnishd.ErrNotInstalled)
	if !errors.Is(err, varnishd.ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install -y varnish varnish-modules") {
		t.Fatalf("ErrNotInstalled = %v", err)
	}
}

// With VCLName the initial VCL is loaded and active under that name (the
// name the edge sync gives it), not "boot"; a VCL that does not compile
// still fails the start.
func TestStartWithVCLName(t *testing.T) {
	edgetest.RequireVarnish(t)
	t.Parallel()
	o := options(t, minimalVCL)
	o.VCLName = "cdnflow_named"
	p, err := varnishd.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop(context.Background()) }()
	ctx := context.Background()
	conn, err := varnishadm.DialSecretFile(ctx, o.AdminAddr, o.SecretFile)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if active, err := conn.Active(ctx); err != nil || active != o.VCLName {
		t.Fatalf("active vcl %q, %v; want %s", active, err, o.VCLName)
	}
	resp, err := http.Get("http://" + o.ListenAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("status %d", resp.StatusCode)
	}

	bad := options(t, "vcl 4.1;\nsub vcl_recv { this is not vcl }\n")
	bad.VCLName = "cdnflow_bad"
	if p, err := varnishd.Start(ctx, bad); err == nil {
		_ = p.Stop(ctx)
		t.Fatal("started with broken VCL")
	}
}
