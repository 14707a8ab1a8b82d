package connector

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Site is one distribution as an edge serves it: the entry of the edge's
// site table that the connector routes by the client's Host. The table is
// the edge's whole per-distribution configuration; the VCL only holds what
// must be decided before the cache lookup (referrer rules, see Referrer),
// rendered from the same table. JSON is the admin protocol's shape.
type Site struct {
	// Name is the distribution's domain; it names the entry.
	Name string `json:"name"`
	// Hosts are the domain and its aliases: lower-case DNS names without
	// port, each served by one site only.
	Hosts []string `json:"hosts"`
	// Gen orders the changes of one distribution (newer wins).
	Gen Generation `json:"gen"`
	// Origins (1 to MaxOrigins) are balanced round-robin.
	Origins []SiteOrigin `json:"origins"`
	// ForwardRequestHost sends the client's Host to the origins (NHN
	// forwardHostHeader REQUEST_HOST_HEADER); false sends each origin's
	// own name (ORIGIN_HOSTNAME).
	ForwardRequestHost bool `json:"forwardRequestHost,omitempty"`
	// TTL (seconds) > 0 forces the object lifetime (NHN useOrigin N,
	// maxAge); the connector hands it to the VCL in HeaderTTL. 0 obeys
	// the origin's caching headers.
	TTL int64 `json:"ttl,omitempty"`
	// Suspended sites are answered 403 without a fetch (NHN SUSPEND).
	Suspended bool `json:"suspended,omitempty"`
	// Referrer is enforced by the edge's VCL (on hits too); nil: none.
	Referrer *Referrer `json:"referrer,omitempty"`
	// Owner is the id of the control plane that wrote the entry (one per
	// cdnflow cluster and namespace: config --control-plane-id). A control
	// plane's sync deletes and heals only its own entries; "" is an entry
	// no control plane claims.
	Owner string `json:"owner,omitempty"`
}

// SiteOrigin is one origin of a Site and its own path prefix (NHN
// origins[].originPath): "" or "/a/b", prepended to the client's path on
// the origin request. Cache keys and ban URLs keep the client's URL.
type SiteOrigin struct {
	Origin
	Path string `json:"path,omitempty"`
}

// Referrer is a site's Referer rule (NHN referrerType, referrers,
// isAllowWhenEmptyReferrer): Type "BLACKLIST" or "WHITELIST", Patterns
// PCRE matched against the Referer header.
type Referrer struct {
	Type       string   `json:"type"`
	Patterns   []string `json:"patterns,omitempty"`
	AllowEmpty bool     `json:"allowEmpty,omitempty"`
}

// Generation orders the changes of one distribution: Created is its
// creation time (epoch ms), so a domain deleted and created again is newer
// than every change of its earlier life; Version counts its changes.
type Generation struct {
	Created int64 `json:"created"`
	Version int   `json:"version"`
}

// Less reports whether g is older than o.
func (g Generation) Less(o Generation) bool {
	if g.Created != o.Created {
		return g.Created < o.Created
	}
	return g.Version < o.Version
}

// String is "created.version", as logs and GET /v1/edges show it.
func (g Generation) String() string { return fmt.Sprintf("%d.%d", g.Created, g.Version) }

// Additional internal headers of the site table.
const (
	// HeaderAdmin marks a request to the site table's admin protocol.
	// The edge's VCL forwards it only from the purge ACL (anyone else is
	// answered 403) and removes it from every other request.
	HeaderAdmin = "X-Cdnflow-Admin"
	// HeaderTTL on a response tells the VCL the site's forced lifetime in
	// seconds (Site.TTL); origins cannot set it (internal headers are
	// removed from their answers).
	HeaderTTL = "X-Cdnflow-Ttl"
)

// AdminPath is the path prefix of the admin protocol: GET AdminPath (the
// table), PUT AdminPath (replace it: Table), PUT AdminPath+name (one
// Site, applied when its Gen is not older), DELETE
// AdminPath+name?created=&version= (remove, remembering the generation).
const AdminPath = "/.cdnflow/sites/"

// MaxOriginPathLen is the longest origin path prefix (bytes): the one
// limit the NHN API, the VCL renderer and the connector share.
const MaxOriginPathLen = 1024

var originPathRe = regexp.MustCompile(`^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$`)

// CheckOriginPath validates an origin path prefix: "" or RFC 3986 path
// segments ("/a/b", no trailing "/"), percent-encoded where needed, at
// most MaxOriginPathLen bytes.
func CheckOriginPath(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > MaxOriginPathLen {
		return fmt.Errorf("originPath is %d characters long; at most %d", len(p), MaxOriginPathLen)
	}
	if !originPathRe.MatchString(p) {
		return fmt.Errorf("originPath %q must start with / and contain only URL path characters (percent-encode others)", p)
	}
	return nil
}

// Check validates s as the connector will serve it; the error names the
// bad value.
func (s Site) Check() error {
	if s.Name == "" || len(s.Name) > 253 {
		return errors.New("site without a valid name")
	}
	if len(s.Hosts) == 0 {
		return fmt.Errorf("site %s: no hosts", s.Name)
	}
	for _, h := range s.Hosts {
		if len(h) > 253 || !hostNameRe.MatchString(h) {
			return fmt.Errorf("site %s: host %q is not a lower-case DNS name", s.Name, h)
		}
	}
	if len(s.Origins) == 0 || len(s.Origins) > MaxOrigins {
		return fmt.Errorf("site %s: %d origins; want 1 to %d", s.Name, len(s.Origins), MaxOrigins)
	}
	for _, o := range s.Origins {
		if _, err := parseOrigin(o.Origin.String()); err != nil {
			return fmt.Errorf("site %s: %w", s.Name, err)
		}
		if err := CheckOriginPath(o.Path); err != nil {
			return fmt.Errorf("site %s: %w", s.Name, err)
		}
	}
	if s.TTL < 0 {
		return fmt.Errorf("site %s: negative TTL", s.Name)
	}
	return nil
}

// Digest is a short content hash of a set of sites, in name order: equal
// tables have equal digests.
func Digest(sites []Site) string {
	sorted := slices.Clone(sites)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	b, _ := json.Marshal(sorted)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// TableState is the answer of GET AdminPath.
type TableState struct {
	// Started is when this connector process started: a change means the
	// edge restarted (and its table began empty).
	Started time.Time `json:"started"`
	Digest  string    `json:"digest"`
	Sites   []Site    `json:"sites"`
}

// Table is an edge's site table. Safe for concurrent use.
type Table struct {
	mu      sync.RWMutex
	started time.Time
	sites   map[string]Site   // by name
	hosts   map[string]string // host -> site name
	// gone remembers deleted generations for tombstoneFor, so a late
	// retry of an older change cannot bring a deleted site back.
	gone map[string]tombstone
}

type tombstone struct {
	gen Generation
	at  time.Time
}

const tombstoneFor = 10 * time.Minute

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{started: time.Now().UTC(), sites: map[string]Site{}, hosts: map[string]string{}, gone: map[string]tombstone{}}
}

// Lookup returns the site serving host (lower-case, no port).
func (t *Table) Lookup(host string) (Site, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	name, ok := t.hosts[host]
	if !ok {
		return Site{}, false
	}
	return t.sites[name], true
}

// ErrHostTaken is returned by Put when another site serves one of the
// hosts.
var ErrHostTaken = errors.New("host already served by another site")

// PutResult answers Put (and PUT/DELETE AdminPath+name).
type PutResult struct {
	// Applied is false when the table holds a newer generation (or
	// deleted one): nothing changed.
	Applied bool `json:"applied"`
	// New: the site was not in the table before.
	New bool `json:"new,omitempty"`
	// ReferrerChanged: the site's referrer rule changed (or came or went
	// with a rule), so the edge's VCL must be rendered again.
	ReferrerChanged bool `json:"referrerChanged,omitempty"`
	// Changed: what visitors get from the site's hosts changed (hosts,
	// origins and their paths, Host forwarding, TTL, suspension,
	// referrer rule), compared by content: a put of an equal entry under a
	// new generation is Applied but not Changed, and bans nothing.
	Changed bool `json:"changed,omitempty"`
	// Current is the generation the table holds for the name after the
	// request (nil: none), and CurrentOwner its owner: when Applied is
	// false they say what won.
	Current      *Generation `json:"current,omitempty"`
	CurrentOwner string      `json:"currentOwner,omitempty"`
}

// Put stores s unless the table holds a newer generation of it (or
// deleted one). An invalid site or a host served by another site is an
// error and changes nothing.
func (t *Table) Put(s Site) (PutResult, error) {
	if err := s.Check(); err != nil {
		return PutResult{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, had := t.sites[s.Name]
	if had && s.Gen.Less(cur.Gen) {
		return PutResult{}, nil
	}
	if g, ok := t.gone[s.Name]; ok && s.Gen.Less(g.gen) {
		return PutResult{}, nil // older than the delete: a late retry
	}
	for _, h := range s.Hosts {
		if owner, ok := t.hosts[h]; ok && owner != s.Name {
			return PutResult{}, fmt.Errorf("site %s: host %s: %w (%s)", s.Name, h, ErrHostTaken, owner)
		}
	}
	res := PutResult{Applied: true, New: !had, ReferrerChanged: !referrerEqual(cur.Referrer, s.Referrer)}
	t.removeLocked(s.Name)
	t.sites[s.Name] = s
	for _, h := range s.Hosts {
		t.hosts[h] = s.Name
	}
	delete(t.gone, s.Name)
	return res, nil
}

func referrerEqual(a, b *Referrer) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Type == b.Type && a.AllowEmpty == b.AllowEmpty && slices.Equal(a.Patterns, b.Patterns)
}

// Delete removes the site name unless the table holds a newer generation.
func (t *Table) Delete(name string, gen Generation) PutResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, had := t.sites[name]
	if had && gen.Less(cur.Gen) {
		return PutResult{}
	}
	res := PutResult{Applied: true, ReferrerChanged: had && cur.Referrer != nil}
	t.removeLocked(name)
	now := time.Now()
	for n, g := range t.gone {
		if now.Sub(g.at) > tombstoneFor {
			delete(t.gone, n)
		}
	}
	t.gone[name] = tombstone{gen: gen, at: now}
	return res
}

func (t *Table) removeLocked(name string) {
	if old, ok := t.sites[name]; ok {
		for _, h := range old.Hosts {
			if t.hosts[h] == name {
				delete(t.hosts, h)
			}
		}
		delete(t.sites, name)
	}
}

// Replace makes sites the whole table (an operator's restore, tests).
// Every site is checked first; on error nothing changes.
func (t *Table) Replace(sites []Site) error {
	next := NewTable()
	for _, s := range sites {
		if _, err := next.Put(s); err != nil {
			return err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sites, t.hosts, t.gone = next.sites, next.hosts, map[string]tombstone{}
	return nil
}

// State is the table as GET AdminPath answers it, sites in name order.
func (t *Table) State() TableState {
	t.mu.RLock()
	sites := make([]Site, 0, len(t.sites))
	for _, s := range t.sites {
		sites = append(sites, s)
	}
	t.mu.RUnlock()
	sort.Slice(sites, func(i, j int) bool { return sites[i].Name < sites[j].Name })
	return TableState{Started: t.started, Digest: Digest(sites), Sites: sites}
}

// hostOf is the lower-case client Host without port or trailing dot.
func hostOf(h string) string {
	h = strings.ToLower(h)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

// prefixPath puts prefix (checked by CheckOriginPath: already
// percent-encoded) in front of u's path, keeping the client's encoding.
func prefixPath(u *url.URL, prefix string) {
	esc := prefix + u.EscapedPath()
	u.RawPath = esc
	if p, err := url.PathUnescape(esc); err == nil {
		u.Path = p
	}
}
