// Package s3test runs a real S3-compatible object store for tests:
// versitygw (github.com/versity/versitygw, an S3 gateway) with its posix
// backend in a temporary directory, on a free loopback port, with root
// credentials. `make tools` builds the binary into bin/versitygw.
//
// Tests that need it call Start; without the binary they skip with the
// command that builds it, except under CI=true (make test builds it first),
// where a missing binary fails the test.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Root credentials and region of every Server; the store is reachable on
// loopback only.
const (
	AccessKey = "cdnflow-test"
	SecretKey = "cdnflow-test-secret"
	Region    = "us-east-1"
)

// BinaryEnv names a versitygw binary to use instead of bin/versitygw.
const BinaryEnv = "CDNFLOW_VERSITYGW"

// Binary finds versitygw: $CDNFLOW_VERSITYGW, bin/versitygw at the module
// root (make tools), then $PATH.
func Binary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", BinaryEnv, err)
		}
		return p, nil
	}
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", errors.New("versitygw not found: run `make tools` (builds bin/versitygw) or set $" + BinaryEnv)
	}
	return p, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Server is one running (or stopped) versitygw. Its data directory and
// port outlive Stop, so Restart brings back the same buckets and objects.
type Server struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string

	t      testing.TB
	bin    string
	root   string // the posix backend's directory: one subdirectory per bucket
	log    string // the process's output, appended over restarts
	addr   string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs versitygw until the test ends. It sets the AWS SDK's
// environment for the test (credentials, no instance metadata lookups), so
// s3:// URLs of URL(bucket) open without further setup; tests using it must
// not run in parallel. Skips when the binary is absent and $CI is unset.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("real S3 store: %v", err)
		}
		t.Fatalf("real S3 store under CI: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, root: filepath.Join(dir, "data"), log: filepath.Join(dir, "versitygw.log")}
	if err := os.Mkdir(s.root, 0o755); err != nil {
		t.Fatalf("versitygw data dir: %v", err)
	}
	var startErr error
	for try := 0; try < 3; try++ { // a free port can be taken before versitygw binds it
		if s.addr, startErr = freeAddr(); startErr != nil {
			continue
		}
		s.Endpoint = "http://" + s.addr
		if startErr = s.start(); startErr == nil {
			break
		}
	}
	if startErr != nil {
		t.Fatalf("start versitygw: %v", startErr)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer func() { _ = ln.Close() }() // held open only to learn a free port
	return ln.Addr().String(), nil
}

// start runs the process and waits until its health endpoint answers.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	log, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("versitygw log: %w", err)
	}
	defer func() { _ = log.Close() }() // the started process keeps its own descriptor
	cmd := exec.Command(s.bin, "--port", s.addr, "--health", "/health", "--quiet", "posix", s.root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey, "VGW_REGION="+Region)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives a crashed test binary
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("versitygw on %s exited at start (%s): see %s", s.addr, cmd.ProcessState, s.log)
		default:
		}
		resp, err := http.Get(s.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	s.cmd = nil
	return fmt.Errorf("versitygw on %s: no health answer in 15s", s.addr)
}

// Stop kills the process (SIGKILL: an abrupt outage) and waits for it;
// the data directory stays. Stopping a stopped Server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart starts the stopped process again on the same port and data.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restart versitygw: %v", err)
	}
}

// CreateBucket makes a bucket through the S3 API.
func (s *Server) CreateBucket(name string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		s.t.Fatalf("create bucket %s: %v", name, err)
	}
}

// URL is the payload-store URL of bucket on this server (the shape
// --payload-url takes for an S3-compatible store).
func (s *Server) URL(bucket string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "region": {Region}, "use_path_style": {strconv.FormatBool(true)}}
	return "s3://" + bucket + "?" + q.Encode()
}
