//go:build !unit

// Not in `make unit`: package main links the embedded Temporal server (via
// stack and internal/devtemporal), 10 s of linking on 2 cores for these
// tests of 0.1 s; `make test` runs them.

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cdnflow/cdnflow/internal/codec"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/freeport"
)

// `cdnflow codec-server` does not start without the key or on a
// non-loopback address; with the key it decodes what the key sealed.
func TestCodecServerNeedsTheKey(t *testing.T) {
	t.Setenv("CDNFLOW_PAYLOAD_KEY_FILE", "")
	t.Setenv("CDNFLOW_PAYLOAD_KEY", "")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"codec-server"}, &bytes.Buffer{}, &stderr); code != 1 || !strings.Contains(stderr.String(), "payload key") {
		t.Fatalf("without a key: exit %d %s", code, stderr.String())
	}
	key := filepath.Join(t.TempDir(), "payload.key")
	if _, err := codec.CreateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"codec-server", "--payload-key-file", key, "--listen", "0.0.0.0:8234"}, &bytes.Buffer{}, &stderr); code != 1 || !strings.Contains(stderr.String(), "loopback") {
		t.Fatalf("on every interface: exit %d %s", code, stderr.String())
	}
	ring, err := codec.LoadRing(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := codec.Codec{Ring: ring}.Encode([]*commonpb.Payload{{Data: []byte("origin-token-1")}})
	if err != nil {
		t.Fatal(err)
	}
	port, err := freeport.Get("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"codec-server", "--payload-key-file", key, "--listen", addr, "--log-level", "warn"}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: sealed})
	var got commonpb.Payloads
	eventually.Within(t, 10*time.Second, func() error {
		resp, err := http.Post("http://"+addr+"/decode", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("decode: %d %s", resp.StatusCode, buf.String())
		}
		return protojson.Unmarshal(buf.Bytes(), &got)
	})
	if len(got.Payloads) != 1 || string(got.Payloads[0].Data) != "origin-token-1" {
		t.Fatalf("decoded %v", got.Payloads)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("codec-server exit %d", code)
	}
}
