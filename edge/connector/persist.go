package connector

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdnflow/cdnflow/internal/metrics"
)

// tableEvents counts the site table's trouble: closed sites evicted by
// the cap, state file writes that failed.
var tableEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "cdnflow_connector_table_events_total",
	Help: "Origin connector site table events, by event (closed_evicted, save_failed).",
}, []string{"event"})

func init() { metrics.Registry.MustRegister(tableEvents) }

// stateFileVersion is the format of the state file.
const stateFileVersion = 1

// stateFileData is the state file: the whole table as JSON.
type stateFileData struct {
	Version int          `json:"version"`
	Saved   time.Time    `json:"saved"`
	Sites   []Site       `json:"sites"`
	Closed  []ClosedSite `json:"closed,omitempty"`
}

// stateFile is a table's file, locked against a second connector using
// it (an flock on path+".lock", released by close).
type stateFile struct {
	path string
	lock *os.File
}

// openStateFile locks path and reads the table in it; a missing file is
// an empty table. Errors name the file.
func openStateFile(path string) (*stateFile, *tableData, error) {
	fail := func(err error) (*stateFile, *tableData, error) {
		return nil, nil, fmt.Errorf("connector: state file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fail(err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fail(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return fail(fmt.Errorf("in use by another process (lock %s.lock): %w", path, err))
	}
	st := &stateFile{path: path, lock: lock}
	// Temporary files of a write a crash interrupted: the lock says no
	// other writer is using them.
	if tmps, err := filepath.Glob(path + ".tmp-*"); err == nil {
		for _, f := range tmps {
			_ = os.Remove(f)
		}
	}
	d, err := readStateFile(path)
	if err != nil {
		st.close()
		return fail(err)
	}
	return st, d, nil
}

// readStateFile reads and checks the table in path: every site valid,
// each name and host once.
func readStateFile(path string) (*tableData, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newTableData(), nil
	}
	if err != nil {
		return nil, err
	}
	var f stateFileData
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not a site table: %w", err)
	}
	if f.Version != stateFileVersion {
		return nil, fmt.Errorf("version %d; this connector reads version %d", f.Version, stateFileVersion)
	}
	d := newTableData()
	for _, s := range f.Sites {
		if err := s.Check(); err != nil {
			return nil, err
		}
		if _, dup := d.sites[s.Name]; dup {
			return nil, fmt.Errorf("site %s listed twice", s.Name)
		}
		if _, err := d.put(s, true); err != nil {
			return nil, err
		}
	}
	for _, c := range f.Closed {
		if c.Name == "" {
			return nil, errors.New("closed site without a name")
		}
		if _, dup := d.sites[c.Name]; dup {
			return nil, fmt.Errorf("site %s both live and closed", c.Name)
		}
		if _, dup := d.closed[c.Name]; dup {
			return nil, fmt.Errorf("closed site %s listed twice", c.Name)
		}
		d.addClosed(c)
	}
	return d, nil
}

// write replaces the file with d: a temporary file in the same directory,
// synced, renamed over the file, then the directory synced, so the file
// holds either the old table or the new one after a crash. When only the
// directory sync fails, the file may already hold d while the table
// keeps the old content; the failed changes are refused and retried, and
// the next write puts the file back in line with the table.
//
// A 10,000-site table is a few MB of JSON: one write per batch of
// changes (Table.writer), not per change.
func (st *stateFile) write(d *tableData) error {
	f := stateFileData{Version: stateFileVersion, Saved: time.Now().UTC(),
		Sites: make([]Site, 0, len(d.sites)), Closed: make([]ClosedSite, 0, len(d.closed))}
	for _, s := range d.sites {
		f.Sites = append(f.Sites, s)
	}
	for _, c := range d.closed {
		f.Closed = append(f.Closed, c)
	}
	sort.Slice(f.Sites, func(i, j int) bool { return f.Sites[i].Name < f.Sites[j].Name })
	slices.SortFunc(f.Closed, func(a, b ClosedSite) int { return cmp.Compare(a.Name, b.Name) })
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	dir := filepath.Dir(st.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(st.path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // fails once renamed: nothing left to remove
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), st.path); err != nil {
		return err
	}
	dh, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = dh.Close() }()
	if err := dh.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// close releases the lock.
func (st *stateFile) close() {
	_ = st.lock.Close() // closing the descriptor drops the flock
}
