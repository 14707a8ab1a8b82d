package service

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge/connector"
)

// An origin keeps every field from the API body to the edge's site table
// entry: scheme and port by NHN's rules (port, httpsPort unless
// downgraded, httpPort, else 80), the host lower-cased and each origin's
// own originPath without its trailing "/".
func TestOriginFromBodyToSiteEntry(t *testing.T) {
	body := func(downgrade bool) DistributionBody {
		var b DistributionBody
		raw := `{"domain": "www.example.com", "region": "GLOBAL", "useOriginHttpProtocolDowngrade": ` + map[bool]string{true: "true", false: "false"}[downgrade] + `,
			"forwardHostHeader": "ORIGIN_HOSTNAME", "useOrigin": "Y", "referrerType": "BLACKLIST",
			"origins": [
				{"origin": "Origin-A.Example", "port": 8080, "originPath": "/v1/"},
				{"origin": "b.example", "httpsPort": 8443, "originPath": "/b/c"},
				{"origin": "10.0.0.7", "httpPort": 81, "originPath": ""},
				{"origin": "d.example", "httpPort": 8081, "httpsPort": 443, "originPath": "/"}
			]}`
		if err := json.Unmarshal([]byte(raw), &b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	origin := func(scheme, host string, port int, path string) connector.SiteOrigin {
		return connector.SiteOrigin{Origin: connector.Origin{Scheme: scheme, Host: host, Port: port}, Path: path}
	}
	// show names every field: SiteOrigin's String is the origin's alone.
	show := func(list []connector.SiteOrigin) string {
		out := ""
		for _, o := range list {
			out += fmt.Sprintf("{%s %s %d %q} ", o.Scheme, o.Host, o.Port, o.Path)
		}
		return out
	}
	for _, tc := range []struct {
		downgrade bool
		want      []connector.SiteOrigin
	}{
		{false, []connector.SiteOrigin{
			origin("http", "origin-a.example", 8080, "/v1"),
			origin("https", "b.example", 8443, "/b/c"),
			origin("http", "10.0.0.7", 81, ""),
			origin("https", "d.example", 443, ""),
		}},
		{true, []connector.SiteOrigin{
			origin("http", "origin-a.example", 8080, "/v1"),
			origin("http", "b.example", 80, "/b/c"),
			origin("http", "10.0.0.7", 81, ""),
			origin("http", "d.example", 8081, ""),
		}},
	} {
		cfg, err := buildConfig(body(tc.downgrade), modeCreate, distribution.Config{IsAllowWhenEmptyReferrer: true})
		if err != nil {
			t.Fatalf("downgrade %v: body refused: %v", tc.downgrade, err)
		}
		e, err := activities.EntryOf(distribution.SiteSpec{Domain: "www.example.com", Version: 1, Created: 1, Config: cfg})
		if err != nil {
			t.Fatalf("downgrade %v: no entry: %v", tc.downgrade, err)
		}
		if !reflect.DeepEqual(e.Origins, tc.want) {
			t.Errorf("downgrade %v: site entry origins\n got %s\nwant %s", tc.downgrade, show(e.Origins), show(tc.want))
		}
	}
}
