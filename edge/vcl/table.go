package vcl

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// Entry is s as the edge's site table holds it (connector.Site), with
// generation gen. It checks s as Render does; the error names the value.
func (s Site) Entry(gen connector.Generation) (connector.Site, error) {
	if len(s.Origins) == 0 || len(s.Origins) > connector.MaxOrigins {
		return connector.Site{}, fmt.Errorf("site %q: %d origins; want 1 to %d", s.Name, len(s.Origins), connector.MaxOrigins)
	}
	var origins []connector.SiteOrigin
	for _, b := range s.Origins {
		if err := CheckBackend(b); err != nil {
			return connector.Site{}, fmt.Errorf("site %q: %w", s.Name, err)
		}
		path := b.Path
		if path == "" {
			path = s.OriginPath
		}
		if err := CheckOriginPath(path); err != nil {
			return connector.Site{}, fmt.Errorf("site %q: origin %s: %w", s.Name, b.Host, err)
		}
		scheme := b.Scheme
		if scheme == "" {
			scheme = "http"
		}
		origins = append(origins, connector.SiteOrigin{
			Origin: connector.Origin{Scheme: scheme, Host: backendHost(b.Host), Port: b.Port},
			Path:   strings.TrimSuffix(path, "/"),
		})
	}
	return s.entry(gen, origins)
}

// EntryWith is s's hosts and rules as the edge's site table holds them,
// with origins already in the table's shape: a distribution's origins come
// from its own model (distribution.Config.SiteOrigins), so s has none of
// its own. The entry is checked (connector.Site.Check).
func (s Site) EntryWith(gen connector.Generation, origins []connector.SiteOrigin) (connector.Site, error) {
	if len(s.Origins) != 0 || s.OriginPath != "" {
		return connector.Site{}, fmt.Errorf("site %q: origins given twice", s.Name)
	}
	return s.entry(gen, origins)
}

func (s Site) entry(gen connector.Generation, origins []connector.SiteOrigin) (connector.Site, error) {
	sp := &sitePlan{name: s.Name}
	pl := sitePlanner{p: &renderPlan{}, hostOwner: map[string]string{}, names: map[string]bool{}}
	if err := pl.hosts(sp, s); err != nil {
		return connector.Site{}, fmt.Errorf("site %q: %w", s.Name, err)
	}
	if err := siteRules(sp, s); err != nil {
		return connector.Site{}, fmt.Errorf("site %q: %w", s.Name, err)
	}
	e := connector.Site{
		Name: s.Name, Hosts: sp.hosts, Gen: gen, Origins: origins,
		ForwardRequestHost: !sp.forwardHost, TTL: sp.ttlSeconds, Suspended: s.Suspended,
	}
	if sp.refType != "" {
		e.Referrer = &connector.Referrer{Type: sp.refType, Patterns: sp.referrers, AllowEmpty: sp.allowEmpty}
	}
	if len(sp.cookies) > 0 || s.CachePrivate {
		e.Cache = &connector.CachePolicy{Cookies: sp.cookies, CachePrivate: s.CachePrivate}
	}
	if err := e.Check(); err != nil {
		return connector.Site{}, err
	}
	return e, nil
}

// SiteOfEntry is what Render needs of a table entry (the edge's VCL is
// rendered from its table): hosts and rules. The origins stay in the
// table, which the connector reads; the VCL names none.
func SiteOfEntry(e connector.Site) Site {
	s := Site{Name: e.Name, Hosts: e.Hosts, Suspended: e.Suspended, ForwardHostHeader: ForwardOriginHostname,
		TTL: time.Duration(e.TTL) * time.Second}
	if e.ForwardRequestHost {
		s.ForwardHostHeader = ForwardRequestHost
	}
	if r := e.Referrer; r != nil {
		s.ReferrerType, s.Referrers, s.AllowEmptyReferrer = r.Type, r.Patterns, r.AllowEmpty
	}
	if c := e.Cache; c != nil {
		s.ForwardCookies, s.CachePrivate = c.Cookies, c.CachePrivate
	}
	return s
}

// Entries are cfg's sites as table entries, all with generation gen (tests
// and tools that load a whole configuration at once).
func Entries(cfg Config, gen connector.Generation) ([]connector.Site, error) {
	out := make([]connector.Site, 0, len(cfg.Sites))
	for _, s := range cfg.Sites {
		e, err := s.Entry(gen)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// WithTable is cfg with the VCL of a site table's entries added: only
// entries with a referrer rule or forwarded cookies need VCL (everything
// else is the connector's), in name order, so equal tables render equal VCL and get
// equal content-addressed names (varnishadm.ManagedName). The edge sync
// and an edge booted by `cdnflow dev` render through it alike.
func WithTable(cfg Config, sites []connector.Site) Config {
	cfg.Sites = nil
	for _, s := range sites {
		if s.Referrer != nil || (s.Cache != nil && len(s.Cache.Cookies) > 0) {
			cfg.Sites = append(cfg.Sites, SiteOfEntry(s))
		}
	}
	sort.Slice(cfg.Sites, func(i, j int) bool { return cfg.Sites[i].Name < cfg.Sites[j].Name })
	return cfg
}
