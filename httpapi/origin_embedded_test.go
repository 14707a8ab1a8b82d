//go:build !unit

package httpapi_test

import (
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// Origins given as IPv6 forms that carry an internal IPv4 address, and
// cloud metadata addresses, are refused at create (10001) even where
// private origins are allowed.
func TestEmbeddedAndMetadataOriginsRefused(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.AllowPrivateOrigins = true
	}})
	for _, host := range []string{"2002:a9fe:a9fe::", "2002:a00:1::1", "64:ff9b:1::a00:1", "::a00:1", "100.100.100.200", "192.0.0.8"} {
		create := map[string]any{"distributions": []map[string]any{{
			"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
			"origins": []map[string]any{{"origin": host, "port": 80, "originPath": ""}},
		}}}
		h := nhn(t, env, "POST", "/distributions", secret, create, nil)
		if h.IsSuccessful || h.ResultCode != 10001 || !strings.Contains(h.ResultMessage, "refused") {
			t.Errorf("origin %s: %+v, want 10001 refused", host, h)
		}
	}
	// A private origin is still admitted under --allow-private-origins.
	ok := map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": "10.1.2.3", "port": 80, "originPath": ""}},
	}}}
	if h := nhn(t, env, "POST", "/distributions", secret, ok, nil); !h.IsSuccessful {
		t.Errorf("private origin with --allow-private-origins: %+v", h)
	}
}
