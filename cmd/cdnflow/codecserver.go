package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/cli"
	"github.com/cdnflow/cdnflow/internal/codec"
	"github.com/cdnflow/cdnflow/stack"
)

// runCodecServer is `cdnflow codec-server`: the codec endpoint the
// Temporal Web UI decodes sealed payloads through (codec.Handler), on a
// loopback address, with the payload key ring. Without a key it does not
// start: the endpoint is where the key is needed.
func runCodecServer(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("cdnflow codec-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterCodecServer(fs)
	if _, err := cli.Parse(fs, args, 0); err != nil {
		return err
	}
	ring, err := cfg.PayloadRing()
	if err != nil {
		return err
	}
	if ring == nil {
		return fmt.Errorf("codec-server needs the payload key: --payload-key-file, $CDNFLOW_PAYLOAD_KEY_FILE or $%s", config.PayloadKeyEnv)
	}
	if err := checkLoopback(cfg.CodecListen); err != nil {
		return err
	}
	logger, err := stack.NewLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	ln, err := net.Listen("tcp", cfg.CodecListen)
	if err != nil {
		return fmt.Errorf("codec-server: %w", err)
	}
	logger.Info("codec endpoint", zap.String("url", "http://"+ln.Addr().String()), zap.Strings("uiOrigins", cfg.CodecUIOrigins), zap.Strings("keys", ring.IDs()))
	srv := &http.Server{Handler: codec.Handler(ring, cfg.CodecUIOrigins), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // Serve returns ErrServerClosed either way
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("codec-server: %w", err)
	}
	return nil
}

// checkLoopback refuses a listen address that is not a loopback IP:port:
// the endpoint decrypts for whoever reaches it.
func checkLoopback(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("codec-server --listen %q: want a loopback IP:port (127.0.0.1:8234); it decrypts for whoever reaches it", addr)
	}
	return nil
}
