package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cdnflow/cdnflow/internal/codec"
)

// serverEnvPrefixes are the variables of the first `cluster up` that the
// cluster keeps for its workers and APIs (appKeys, tuning, tracing).
var serverEnvPrefixes = []string{"CDNFLOW_", "OTEL_"}

// envFile keeps the environment the workers and APIs were first started
// with, so a process restarted by a later `up` from another shell (one
// without CDNFLOW_APP_KEYS, say) runs as its siblings do.
func (c *Cluster) envFile() string { return filepath.Join(c.opts.Dir, "cluster.env") }

// callerEnv is the caller's CDNFLOW_* and OTEL_* variables, sorted.
func callerEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		for _, p := range serverEnvPrefixes {
			if strings.HasPrefix(kv, p) {
				out = append(out, kv)
			}
		}
	}
	sort.Strings(out)
	return out
}

// keepEnv writes the caller's environment to envFile on the first up;
// on later ups it reports (Logf) a caller whose environment differs, and
// the saved one stays in force.
func (c *Cluster) keepEnv() error {
	saved, err := c.savedEnv()
	if errors.Is(err, os.ErrNotExist) {
		data := strings.Join(callerEnv(), "\n")
		if data != "" {
			data += "\n"
		}
		if err := os.WriteFile(c.envFile(), []byte(data), 0o600); err != nil {
			return fmt.Errorf("cluster env: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if got, want := strings.Join(callerEnv(), "\n"), strings.Join(saved, "\n"); got != want {
		c.opts.Logf("workers and APIs keep the environment of the first up (%s: %d CDNFLOW_*/OTEL_* variables), not this shell's; edit or remove the file and restart them to change it", c.envFile(), len(saved))
	}
	return nil
}

// savedEnv reads envFile: NAME=value lines.
func (c *Cluster) savedEnv() ([]string, error) {
	data, err := os.ReadFile(c.envFile())
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, "=") {
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out, sc.Err()
}

// PayloadKeyFile is the cluster's payload key ring (internal/codec):
// <dir>/payload.key, the file `cdnflow codec-server --payload-key-file`
// takes to show the cluster's payloads in the Web UI.
func (c *Cluster) PayloadKeyFile() string { return filepath.Join(c.opts.Dir, "payload.key") }

// serverEnv is what a worker or API gets beyond the inherited
// environment: the payload store's credentials, then the saved
// environment, which wins over the caller's (exec uses the last value of
// a repeated name). Variables of the caller that the first up did not
// have are dropped, so every process sees the same configuration.
func (c *Cluster) serverEnv() ([]string, error) {
	env, err := c.payloadEnv()
	if err != nil {
		return nil, err
	}
	saved, err := c.savedEnv()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	have := map[string]bool{}
	for _, kv := range saved {
		name, _, _ := strings.Cut(kv, "=")
		have[name] = true
	}
	for _, kv := range callerEnv() {
		if name, _, _ := strings.Cut(kv, "="); !have[name] {
			env = append(env, name+"=") // unset for the child (empty = default)
		}
	}
	// Every worker and API seals payloads with the cluster's key ring,
	// made on the first up (0600); the saved environment's setting wins.
	key := c.PayloadKeyFile()
	if _, err := codec.CreateKeyFile(key); err != nil {
		return nil, err
	}
	env = append(env, "CDNFLOW_PAYLOAD_KEY_FILE="+key)
	return append(append(env, saved...), c.opts.ServerEnv...), nil
}
