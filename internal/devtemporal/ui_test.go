//go:build !unit

package devtemporal_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/internal/devtemporal"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/testlog"
)

// The embedded Web UI is read-only unless asked, and decodes payloads
// through the codec endpoint it is given: what its settings route tells
// the browser app.
func TestWebUIReadOnlyWithCodecEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Temporal server: skipped under -short")
	}
	const endpoint = "http://127.0.0.1:8234"
	srv, err := devtemporal.Start(devtemporal.Options{DataDir: t.TempDir(), Logger: testlog.Logger(t, zap.WarnLevel), UICodecEndpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	var settings struct {
		DisableWriteActions bool
		Codec               struct{ Endpoint string }
	}
	eventually.Within(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + srv.UIAddr + "/api/v1/settings")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return json.Unmarshal(data, &settings)
	})
	if !settings.DisableWriteActions || settings.Codec.Endpoint != endpoint {
		t.Fatalf("web ui settings: %+v, want write actions off and codec endpoint %s", settings, endpoint)
	}
}
