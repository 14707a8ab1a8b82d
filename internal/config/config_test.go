package config

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

func parse(t *testing.T, env map[string]string, args ...string) Config {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	c := Default()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterDev(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}

// The payload store comes from --payload-url or $CDNFLOW_PAYLOAD_URL (the
// flag wins), else the deprecated --claim-check-dir, else
// <data-dir>/payloads, always as an absolute file:// URL.
func TestPayloadStoreURL(t *testing.T) {
	dir := t.TempDir()
	const s3 = "s3://b?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true"
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"default", nil, []string{"--data-dir", dir}, "file://" + filepath.Join(dir, "payloads")},
		{"flag", nil, []string{"--payload-url", s3}, s3},
		{"env", map[string]string{"CDNFLOW_PAYLOAD_URL": "gs://g"}, nil, "gs://g"},
		{"flag over env", map[string]string{"CDNFLOW_PAYLOAD_URL": "gs://g"}, []string{"--payload-url", s3}, s3},
		{"deprecated dir", nil, []string{"--claim-check-dir", dir}, "file://" + dir},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := parse(t, c.env, c.args...)
			if got := cfg.PayloadStoreURL(); got != c.want {
				t.Fatalf("PayloadStoreURL = %s, want %s", got, c.want)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	if got := parse(t, nil, "--data-dir", "rel").PayloadStoreURL(); !strings.HasPrefix(got, "file:///") || !strings.HasSuffix(got, "/rel/payloads") {
		t.Fatalf("relative data dir gives %s, want an absolute file URL", got)
	}
}

func TestValidateRefusesBadPayloadURL(t *testing.T) {
	for args, want := range map[[2]string]string{
		{"--payload-url", "ftp://x"}:      `payload-url "ftp://x": scheme "ftp"`,
		{"--payload-url", "s3://b?x=%zz"}: "invalid URL escape",
		{"--payload-url", "s3://"}:        "no bucket name",
	} {
		err := parse(t, nil, args[0], args[1]).Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: Validate = %v, want %q", args, err, want)
		}
	}
	err := parse(t, nil, "--payload-url", "gs://g", "--claim-check-dir", "/d").Validate()
	if err == nil || !strings.Contains(err.Error(), "claim-check-dir") {
		t.Errorf("both set: %v", err)
	}
}
