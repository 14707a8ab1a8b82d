package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// The Temporal server's PostgreSQL role and databases. The password only
// guards a server listening on 127.0.0.1 of a development machine; a
// production deployment supplies its own (deployments/).
const (
	pgUser       = "temporal"
	pgPassword   = "temporal"
	pgDB         = "temporal"
	pgVisibility = "temporal_visibility"
)

// ErrPostgresNotInstalled means initdb/postgres were not found.
var ErrPostgresNotInstalled = errors.New(`PostgreSQL not found: install it with "sudo apt-get install -y postgresql" (or set --pg-bin-dir)`)

func (c *Cluster) pgData() string   { return filepath.Join(c.opts.Dir, "pgdata") }
func (c *Cluster) pgSocket() string { return filepath.Join(c.opts.Dir, "pgsock") }

// pgBin returns the path of a PostgreSQL program.
func (c *Cluster) pgBin(name string) (string, error) {
	if c.opts.PostgresBinDir != "" {
		return filepath.Join(c.opts.PostgresBinDir, name), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name), nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", ErrPostgresNotInstalled
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// pgCredential runs PostgreSQL as the postgres user when the cluster is
// started by root (postgres refuses to run as root); else as the caller.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user of the Debian package: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) postgresProc() proc {
	bin, _ := c.pgBin("postgres")
	cred, _ := pgCredential()
	argv := []string{bin, "-D", c.pgData(), "-p", strconv.Itoa(c.opts.PGPort),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + c.pgSocket(),
		// Four Temporal services, each with its connection pools.
		"-c", "max_connections=300"}
	names := make([]string, 0, len(c.opts.PGSettings))
	for k := range c.opts.PGSettings {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		argv = append(argv, "-c", k+"="+c.opts.PGSettings[k])
	}
	return proc{name: "postgres", argv: argv, cred: cred, ready: c.pgReady}
}

// pgReady asks pg_isready over TCP, as Temporal connects.
func (c *Cluster) pgReady(ctx context.Context) error {
	bin, err := c.pgBin("pg_isready")
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, bin, "-h", "127.0.0.1", "-p", strconv.Itoa(c.opts.PGPort), "-U", pgUser, "-d", "postgres").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_isready: %s", strings.TrimSpace(string(out)))
	}
	return nil
}

// upPostgres initialises the data directory on first use, starts the
// server and creates the temporal role.
func (c *Cluster) upPostgres(ctx context.Context) error {
	if _, err := c.pgBin("initdb"); err != nil {
		return err
	}
	if err := c.initdb(ctx); err != nil {
		return err
	}
	c.opts.Logf("starting postgres on 127.0.0.1:%d", c.opts.PGPort)
	if err := c.start(ctx, c.postgresProc()); err != nil {
		return err
	}
	exists, err := c.psql(ctx, "postgres", fmt.Sprintf("SELECT 1 FROM pg_roles WHERE rolname = '%s'", pgUser))
	if err != nil {
		return err
	}
	if exists == "1" {
		return nil
	}
	_, err = c.psql(ctx, "postgres", fmt.Sprintf("CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s'", pgUser, pgPassword))
	return err
}

// initdb creates the data directory: local (socket) connections trusted,
// TCP connections with a password.
func (c *Cluster) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.pgData(), "PG_VERSION")); err == nil {
		return nil
	}
	cred, err := pgCredential()
	if err != nil {
		return err
	}
	for _, d := range []string{c.pgData(), c.pgSocket()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("postgres dir: %w", err)
		}
		if cred != nil {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return fmt.Errorf("postgres dir: %w", err)
			}
		}
	}
	bin, _ := c.pgBin("initdb")
	cmd := exec.CommandContext(ctx, bin, "-D", c.pgData(), "-U", "postgres", "-E", "UTF8", "--locale=C",
		"--auth-local=trust", "--auth-host=scram-sha-256")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = c.pgData()
	c.opts.Logf("initdb %s", c.pgData())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// psql runs one statement as the postgres superuser over the private
// socket and returns the unaligned, tuples-only result.
func (c *Cluster) psql(ctx context.Context, db, sql string) (string, error) {
	bin, err := c.pgBin("psql")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, "-h", c.pgSocket(), "-p", strconv.Itoa(c.opts.PGPort), "-U", "postgres", "-d", db,
		"-v", "ON_ERROR_STOP=1", "-tAc", sql)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql %q: %w: %s", sql, err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
