package connector

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The edge's control channel: PURGE, BAN, the cache-only probe and the
// site table's admin protocol ride on the visitors' listener, so the
// edge's VCL (edge/vcl) admits them only from its purge ACL AND with the
// edge's control token in HeaderControl; the connector checks the token
// again on admin requests when it is given the secret
// (Options.ControlSecretFile).
const (
	// HeaderControl carries the edge's control token (ControlToken) on
	// every control request. The VCL removes it before anything is
	// forwarded, except on admin requests, which the connector checks.
	HeaderControl = "X-Cdnflow-Control"
	// controlTokenMessage is what the token is the HMAC of: a fixed,
	// versioned label, so the token authenticates nothing but this use.
	controlTokenMessage = "cdnflow edge control v1"
)

// Health check of the connector: Varnish's probe of its only backend
// (edge/vcl) sends GET HealthPath with HeaderHealth; the connector answers
// 200 "ok" whatever the Host and whatever its site table holds. The VCL
// removes HeaderHealth from visitors' requests, so a visitor's request for
// HealthPath reaches the origin as any other path.
const (
	HealthPath   = "/.cdnflow/health"
	HeaderHealth = "X-Cdnflow-Health"
)

// ControlToken is the control token of an edge whose Varnish CLI secret
// (the file varnishd -S reads, inventory.Edge.SecretFile) holds secret:
// the lowercase hex HMAC-SHA256 (64 characters) of "cdnflow edge control
// v1" keyed with the file's exact bytes. The secret itself never travels
// over HTTP, and rotating it rotates the token.
func ControlToken(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(controlTokenMessage))
	return hex.EncodeToString(m.Sum(nil))
}

// tokenRecheck is how often ControlTokenFile looks at a secret file again
// (a stat) to see whether it changed.
const tokenRecheck = time.Second

// tokenFile is one secret file's cached token.
type tokenFile struct {
	mu      sync.Mutex
	checked time.Time // last stat
	mod     time.Time // modification time of the bytes token comes from
	size    int64
	token   string // "" until the file was read once
}

// tokenFiles caches tokens by secret file path for the whole process: one
// entry per edge of the inventory.
var tokenFiles sync.Map // path → *tokenFile

// ControlTokenFile is ControlToken of the secret file at path. The token
// is cached per path for the process and derived again when the file's
// size or modification time changes (looked at once a second at most), so
// a rotated secret is followed without a restart. Once the file was read,
// a failed stat or read keeps the last token (it is retried a second
// later); errors are only for a file never read.
func ControlTokenFile(path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("control token: no secret file")
	}
	v, ok := tokenFiles.Load(path)
	if !ok { // LoadOrStore allocates its new value on every call
		v, _ = tokenFiles.LoadOrStore(path, &tokenFile{})
	}
	tf := v.(*tokenFile)
	tf.mu.Lock()
	defer tf.mu.Unlock()
	now := time.Now()
	if tf.token != "" && now.Sub(tf.checked) < tokenRecheck {
		return tf.token, nil
	}
	tf.checked = now
	fi, err := os.Stat(path)
	if err == nil && tf.token != "" && fi.ModTime().Equal(tf.mod) && fi.Size() == tf.size {
		return tf.token, nil
	}
	var secret []byte
	if err == nil {
		secret, err = os.ReadFile(path)
	}
	switch {
	case err != nil && tf.token != "":
		return tf.token, nil
	case err != nil:
		return "", fmt.Errorf("control token: read secret: %w", err)
	case len(secret) == 0:
		return "", fmt.Errorf("control token: secret file %s is empty", path)
	}
	tf.token, tf.mod, tf.size = ControlToken(secret), fi.ModTime(), fi.Size()
	return tf.token, nil
}

// ValidControl reports whether the request carries the control token:
// HeaderControl equal to token, compared in constant time. An empty token
// admits nothing.
func ValidControl(r *http.Request, token string) bool {
	got := r.Header.Get(HeaderControl)
	return token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// allowAdmin answers 403 "Forbidden" and reports false when the connector
// was given the control secret (Options.ControlSecretFile) and r does not
// carry its token: the edge's VCL checks the same, this is the second
// wall. Without the secret every request reaching the connector is
// admitted (its listener is on loopback; the VCL is then the only check).
func (c *Connector) allowAdmin(w http.ResponseWriter, r *http.Request) bool {
	if c.opts.ControlSecretFile == "" {
		return true
	}
	token, err := ControlTokenFile(c.opts.ControlSecretFile)
	if err == nil && ValidControl(r, token) {
		return true
	}
	fields := []zap.Field{zap.String("method", r.Method), zap.String("url", r.URL.RequestURI())}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	c.log.Warn("admin request without the control token refused", fields...)
	writeStatus(w, http.StatusForbidden, "Forbidden")
	return false
}

// serveHealth answers Varnish's health probe (HealthPath with
// HeaderHealth, GET or HEAD) 200 "ok" and reports whether r was one.
func serveHealth(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != HealthPath || r.Header.Get(HeaderHealth) == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	writeStatus(w, http.StatusOK, "ok")
	return true
}
