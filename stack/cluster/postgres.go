package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

func (c *Cluster) pgData() string   { return filepath.Join(c.pgHome(), "pgdata") }
func (c *Cluster) pgSocket() string { return filepath.Join(c.pgHome(), "pgsock") }

// pgHome holds PostgreSQL's data and socket directories: the cluster
// directory, unless PostgreSQL runs as the postgres user and cannot reach
// it (a checkout under root's private home): then a directory of the
// postgres user's own, named after the cluster directory.
func (c *Cluster) pgHome() string {
	cred, err := pgCredential()
	if err != nil || cred == nil || reachable(c.opts.Dir, cred) {
		return c.opts.Dir
	}
	sum := sha256.Sum256([]byte(c.opts.Dir))
	return filepath.Join("/var/lib/postgresql", "cdnflow-cluster-"+hex.EncodeToString(sum[:6]))
}

// reachable tells whether the user of cred may traverse every directory
// from / down to dir (dir itself is made 0755 by prepareDir).
func reachable(dir string, cred *syscall.Credential) bool {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			return false
		}
		ok := st.Mode&0o001 != 0 || (st.Uid == cred.Uid && st.Mode&0o100 != 0) || (st.Gid == cred.Gid && st.Mode&0o010 != 0)
		if !ok {
			return false
		}
		if d == "/" || d == "." {
			return true
		}
	}
}

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
	return proc{name: "postgres", argv: argv, cred: cred, dir: c.pgHome(), ready: c.pgReady}
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
	dirs := []string{c.pgData(), c.pgSocket()}
	if home := c.pgHome(); home != c.opts.Dir {
		c.opts.Logf("%s is out of reach of the postgres user: PostgreSQL's data goes to %s", c.opts.Dir, home)
		dirs = append([]string{home}, dirs...)
	}
	for _, d := range dirs {
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

// Query runs one SQL statement as the superuser on database db of the
// cluster's PostgreSQL (e.g. "temporal") and returns the unaligned rows.
// For benchmarks and diagnostics.
func (c *Cluster) Query(ctx context.Context, db, sql string) (string, error) {
	return c.psql(ctx, db, sql)
}
