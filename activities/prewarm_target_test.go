package activities

import (
	"net/url"
	"testing"

	"github.com/cdnflow/cdnflow/inventory"
)

func TestPairHostScheme(t *testing.T) {
	plain := inventory.Edge{ID: "P1", Address: "127.0.0.1:1"}
	tls := inventory.Edge{ID: "T1", Address: "127.0.0.1:1", HTTPSAddress: "127.0.0.1:2"}
	cases := []struct {
		scheme, raw string
		e           inventory.Edge
		host, want  string
	}{
		{"", "https://WWW.Example.com:8443/a", tls, "www.example.com", "https"},
		{"", "https://www.example.com/a", plain, "www.example.com", "http"}, // no listener: same cache object over HTTP
		{"", "http://static.example.com/a", tls, "static.example.com", "http"},
		{"http", "https://www.example.com/a", tls, "www.example.com", "http"}, // protocol wins
		{"https", "http://www.example.com/a", tls, "www.example.com", "https"},
		{"http", "/relative", tls, "d1.cdn.test", "http"}, // no host: the job's domain
	}
	for _, tc := range cases {
		u, err := url.Parse(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		host, scheme := pairHostScheme(warmSpec{Domain: "d1.cdn.test", Scheme: tc.scheme}, tc.e, u)
		if host != tc.host || scheme != tc.want {
			t.Errorf("%q %s on %s = %s %s; want %s %s", tc.scheme, tc.raw, tc.e.ID, host, scheme, tc.host, tc.want)
		}
	}
}
