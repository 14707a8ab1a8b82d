package connector

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// tableData is the content of a Table: live sites and closed ones, with
// their host indexes. Its methods change it in place and either fully
// apply or change nothing.
type tableData struct {
	sites       map[string]Site       // by name
	hosts       map[string]string     // host -> live site name
	closed      map[string]ClosedSite // by name; never also in sites
	closedHosts map[string][]string   // host -> names of closed sites listing it
}

func newTableData() *tableData {
	return &tableData{sites: map[string]Site{}, hosts: map[string]string{}, closed: map[string]ClosedSite{}, closedHosts: map[string][]string{}}
}

// clone copies the maps; sites and closed sites are values whose slices
// are never changed in place, so they are shared.
func (d *tableData) clone() *tableData {
	c := &tableData{sites: maps.Clone(d.sites), hosts: maps.Clone(d.hosts), closed: maps.Clone(d.closed),
		closedHosts: make(map[string][]string, len(d.closedHosts))}
	for h, names := range d.closedHosts {
		c.closedHosts[h] = slices.Clip(names) // appends copy
	}
	return c
}

// held is the answer naming what the table holds for name (nil Current:
// nothing).
func (d *tableData) held(name string) PutResult {
	if s, ok := d.sites[name]; ok {
		return PutResult{Current: &s.Gen, CurrentOwner: s.Owner}
	}
	if c, ok := d.closed[name]; ok {
		return PutResult{Current: &c.Gen, CurrentOwner: c.Owner, CurrentClosed: true}
	}
	return PutResult{}
}

// put stores s (checked) unless d holds a newer generation under its
// name, live or closed (force: whatever d holds). A host of another live
// site is ErrHostTaken.
func (d *tableData) put(s Site, force bool) (PutResult, error) {
	cur, had := d.sites[s.Name]
	if !force {
		if had && s.Gen.Less(cur.Gen) {
			return d.held(s.Name), nil
		}
		if c, ok := d.closed[s.Name]; ok && s.Gen.Less(c.Gen) {
			return d.held(s.Name), nil // older than the delete: a late retry
		}
	}
	for _, h := range s.Hosts {
		if other, ok := d.hosts[h]; ok && other != s.Name {
			return PutResult{}, fmt.Errorf("site %s: host %s: %w (%s)", s.Name, h, ErrHostTaken, other)
		}
	}
	res := PutResult{Applied: true, New: !had, ReferrerChanged: !referrerEqual(cur.Referrer, s.Referrer) || !slices.Equal(cur.cookies(), s.cookies()),
		Changed: !had || !sameContent(cur, s)}
	d.removeSite(s.Name)
	d.removeClosed(s.Name)
	d.sites[s.Name] = s
	for _, h := range s.Hosts {
		d.hosts[h] = s.Name
	}
	res.Current, res.CurrentOwner = &s.Gen, s.Owner
	return res, nil
}

// del closes the site name at gen unless d holds a newer generation of
// it (force: whatever it holds). The closed entry keeps the hosts and
// owner of the live site, or of an earlier closed entry.
func (d *tableData) del(name string, gen Generation, force bool, now time.Time) PutResult {
	cur, had := d.sites[name]
	prev, wasClosed := d.closed[name]
	if !force {
		if had && gen.Less(cur.Gen) {
			return d.held(name)
		}
		if wasClosed && gen.Less(prev.Gen) {
			return d.held(name)
		}
	}
	c := ClosedSite{Name: name, Gen: gen, At: now}
	switch {
	case had:
		c.Hosts, c.Owner = cur.Hosts, cur.Owner
	case wasClosed:
		c.Hosts, c.Owner = prev.Hosts, prev.Owner
	}
	d.removeSite(name)
	d.removeClosed(name)
	d.addClosed(c)
	return PutResult{Applied: true, Changed: had, ReferrerChanged: had && (cur.Referrer != nil || len(cur.cookies()) > 0),
		Current: &c.Gen, CurrentOwner: c.Owner, CurrentClosed: true}
}

func (d *tableData) removeSite(name string) {
	if old, ok := d.sites[name]; ok {
		for _, h := range old.Hosts {
			if d.hosts[h] == name {
				delete(d.hosts, h)
			}
		}
		delete(d.sites, name)
	}
}

func (d *tableData) addClosed(c ClosedSite) {
	d.closed[c.Name] = c
	for _, h := range c.Hosts {
		d.closedHosts[h] = append(d.closedHosts[h], c.Name)
	}
}

func (d *tableData) removeClosed(name string) {
	c, ok := d.closed[name]
	if !ok {
		return
	}
	for _, h := range c.Hosts {
		rest := slices.DeleteFunc(slices.Clone(d.closedHosts[h]), func(n string) bool { return n == name })
		if len(rest) == 0 {
			delete(d.closedHosts, h)
		} else {
			d.closedHosts[h] = rest
		}
	}
	delete(d.closed, name)
}

// expire drops the closed sites older than retention; it returns how
// many.
func (d *tableData) expire(now time.Time, retention time.Duration) int {
	cutoff := now.Add(-retention)
	n := 0
	for name, c := range d.closed {
		if !c.At.After(cutoff) {
			d.removeClosed(name)
			n++
		}
	}
	return n
}

// expiring reports whether a closed site is older than retention.
func (d *tableData) expiring(now time.Time, retention time.Duration) bool {
	cutoff := now.Add(-retention)
	for _, c := range d.closed {
		if !c.At.After(cutoff) {
			return true
		}
	}
	return false
}

// evict drops the oldest closed sites beyond max and returns them.
func (d *tableData) evict(max int) []ClosedSite {
	if len(d.closed) <= max {
		return nil
	}
	all := slices.Collect(maps.Values(d.closed))
	slices.SortFunc(all, func(a, b ClosedSite) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	out := all[:len(all)-max]
	for _, c := range out {
		d.removeClosed(c.Name)
	}
	return out
}

// sameContent reports whether a and b serve visitors alike: the same
// hosts (in any order), origins with their paths (in order: it sets the
// round-robin order), Host forwarding, TTL, suspension and referrer rule.
// Name, Gen and Owner are not compared.
func sameContent(a, b Site) bool {
	ha, hb := slices.Clone(a.Hosts), slices.Clone(b.Hosts)
	slices.Sort(ha)
	slices.Sort(hb)
	return slices.Equal(ha, hb) && slices.Equal(a.Origins, b.Origins) && a.ForwardRequestHost == b.ForwardRequestHost &&
		a.TTL == b.TTL && a.Suspended == b.Suspended && referrerEqual(a.Referrer, b.Referrer) &&
		slices.Equal(a.cookies(), b.cookies()) && a.cachePrivate() == b.cachePrivate()
}

// cookies are the site's forwarded cookies (nil: none).
func (s Site) cookies() []string {
	if s.Cache == nil {
		return nil
	}
	return s.Cache.Cookies
}

// cachePrivate reports whether the site stores private answers.
func (s Site) cachePrivate() bool { return s.Cache != nil && s.Cache.CachePrivate }

func referrerEqual(a, b *Referrer) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Type == b.Type && a.AllowEmpty == b.AllowEmpty && slices.Equal(a.Patterns, b.Patterns)
}
