package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// The cluster's payload store: versitygw (github.com/versity/versitygw, a
// real S3 gateway built from the Go module proxy by `make tools`) with its
// posix backend in <Dir>/s3/data, one bucket, root credentials generated
// once into <Dir>/s3/credentials. Workers and APIs reach it only through
// the S3 API (--payload-url s3://…, credentials in the AWS SDK's standard
// environment variables): no process reads another's disk.
const (
	// ObjectStoreName is the store's process name (Kill, Start, Stop).
	ObjectStoreName = "s3"
	// PayloadBucket is the bucket of URL lists and per-pair outcomes.
	PayloadBucket = "cdnflow-payloads"
	s3Region      = "us-east-1"
	versitygwBin  = "versitygw"
)

func (c *Cluster) objectStoreAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.ObjectStorePort))
}

// PayloadURL is the --payload-url every worker and API gets: the external
// store of Options.PayloadURL, else the cluster's own bucket.
func (c *Cluster) PayloadURL() string {
	if c.opts.PayloadURL != "" {
		return c.opts.PayloadURL
	}
	q := url.Values{"endpoint": {"http://" + c.objectStoreAddr()}, "region": {s3Region}, "use_path_style": {"true"}}
	return "s3://" + PayloadBucket + "?" + q.Encode()
}

// ownObjectStore tells whether the cluster runs its own store.
func (c *Cluster) ownObjectStore() bool { return c.opts.PayloadURL == "" }

func (c *Cluster) s3Dir() string { return filepath.Join(c.opts.Dir, "s3") }

// s3Credentials reads the store's root key pair, generating it on first
// use (0600, under the cluster directory).
func (c *Cluster) s3Credentials() (access, secret string, err error) {
	path := filepath.Join(c.s3Dir(), "credentials")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return "", "", fmt.Errorf("object store credentials: %w", err)
		}
		data = []byte("cdnflow-" + hex.EncodeToString(buf[:4]) + "\n" + hex.EncodeToString(buf[4:]) + "\n")
		if err := os.MkdirAll(c.s3Dir(), 0o700); err != nil {
			return "", "", fmt.Errorf("object store credentials: %w", err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", "", fmt.Errorf("object store credentials: %w", err)
		}
	} else if err != nil {
		return "", "", fmt.Errorf("object store credentials: %w", err)
	}
	access, secret, ok := strings.Cut(strings.TrimSpace(string(data)), "\n")
	if !ok || access == "" || secret == "" {
		return "", "", fmt.Errorf("object store credentials %s: want two lines (access key, secret key)", path)
	}
	return access, secret, nil
}

// payloadEnv is the AWS SDK environment of a worker or API: the store's
// credentials and region, no instance-metadata lookups. Empty with an
// external store (the processes inherit the caller's environment).
func (c *Cluster) payloadEnv() ([]string, error) {
	if !c.ownObjectStore() {
		return nil, nil
	}
	access, secret, err := c.s3Credentials()
	if err != nil {
		return nil, err
	}
	return []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_REGION=" + s3Region,
		"AWS_EC2_METADATA_DISABLED=true"}, nil
}

func (c *Cluster) objectStoreProc() proc {
	data := filepath.Join(c.s3Dir(), "data")
	return proc{name: ObjectStoreName,
		argv: []string{filepath.Join(c.opts.BinDir, versitygwBin), "--port", c.objectStoreAddr(), "--health", "/health", "--quiet", "posix", data},
		envf: func() ([]string, error) {
			access, secret, err := c.s3Credentials()
			return []string{"ROOT_ACCESS_KEY=" + access, "ROOT_SECRET_KEY=" + secret, "VGW_REGION=" + s3Region}, err
		},
		prepare: func() error {
			if err := os.MkdirAll(data, 0o700); err != nil {
				return fmt.Errorf("object store data dir: %w", err)
			}
			return nil
		},
		ready: func(ctx context.Context) error {
			if err := httpReady("http://"+c.objectStoreAddr()+"/health", 200)(ctx); err != nil {
				return err
			}
			return c.ensureBucket(ctx)
		},
	}
}

// ensureBucket creates the payload bucket through the S3 API unless it
// exists (a restarted store keeps its buckets).
func (c *Cluster) ensureBucket(ctx context.Context) error {
	access, secret, err := c.s3Credentials()
	if err != nil {
		return err
	}
	s := s3.New(s3.Options{Region: s3Region, BaseEndpoint: aws.String("http://" + c.objectStoreAddr()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(access, secret, "")})
	if _, err := s.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(PayloadBucket)}); err == nil {
		return nil
	}
	_, err = s.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(PayloadBucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", PayloadBucket, err)
	}
	return nil
}
