package payload

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
)

// Schemes are the bucket URL schemes this build opens (gocloud.dev/blob
// drivers linked in): file, gs and s3. Azure (azblob://) is not linked in:
// its SDK would add a dozen modules for a store nobody here runs; an
// S3-compatible gateway in front of Azure serves instead.
var Schemes = []string{fileblob.Scheme, gcsblob.Scheme, s3blob.Scheme}

// FileURL is the file:// bucket URL of dir (made absolute): the default
// store, <data-dir>/payloads.
func FileURL(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return (&url.URL{Scheme: fileblob.Scheme, Path: filepath.ToSlash(dir)}).String()
}

// ParseURL checks a bucket URL (--payload-url) and completes it: a file://
// URL gets create_dir=1 (the directory is made), no_tmp_dir=1 (temporary
// files are written beside the payloads, so the final rename never crosses
// devices) and metadata=skip (no .attrs sidecar files), unless the URL sets
// them. Errors name the URL and, for a scheme not linked in, the ones that
// are. The shapes:
//
//	file:///var/lib/cdnflow/payloads
//	s3://BUCKET?region=REGION[&endpoint=http://HOST:PORT&use_path_style=true]
//	gs://BUCKET
//
// s3:// takes its credentials from the AWS SDK's usual sources
// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance
// role); gs:// from Google's application default credentials.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("payload-url %q: %w", raw, err)
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return nil, fmt.Errorf("payload-url %q: query: %w", raw, err)
	}
	known := false
	for _, s := range Schemes {
		known = known || u.Scheme == s
	}
	if !known {
		return nil, fmt.Errorf("payload-url %q: scheme %q is not one of %s", raw, u.Scheme, strings.Join(Schemes, ", "))
	}
	switch u.Scheme {
	case fileblob.Scheme:
		if u.Path == "" || (u.Host != "" && u.Host != ".") {
			return nil, fmt.Errorf("payload-url %q: want file:///absolute/dir", raw)
		}
		q := u.Query()
		for k, v := range map[string]string{"create_dir": "1", "no_tmp_dir": "1", "metadata": "skip"} {
			if !q.Has(k) {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode() // sorted by key: the same URL in every log line
	default:
		if u.Host == "" {
			return nil, fmt.Errorf("payload-url %q: no bucket name (want %s://BUCKET)", raw, u.Scheme)
		}
	}
	return u, nil
}

// Open opens the store at a bucket URL (ParseURL's shapes) without
// contacting it; call Probe to check that it answers.
func Open(ctx context.Context, raw string) (*Bucket, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("payload-url %s: open: %w", u.Redacted(), err)
	}
	return &Bucket{b: b, url: u.Redacted()}, nil
}

// OpenAndProbe opens the store and probes it (Bucket.Probe): the check a
// process runs at start, so that a wrong URL or a store that does not answer
// stops it with one clear error.
func OpenAndProbe(ctx context.Context, raw string) (*Bucket, error) {
	s, err := Open(ctx, raw)
	if err != nil {
		return nil, err
	}
	if err := s.Probe(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Redact is a bucket URL for logs: a password in it is masked; an
// unparsable URL is not echoed.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
