// Package inventory says which edges exist: their PoP id, region, country and
// the addresses cdnflow may talk to. Nothing in cdnflow ever connects to an
// address that is not in the inventory, so this is also the SSRF boundary.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// KindVarnish is the only edge kind cdnflow drives today.
const KindVarnish = "varnish"

// Regions are the region codes of the Prewarm API spec.
var Regions = []string{"apac", "au", "ca", "sa", "eu", "jp", "us", "cn"}

// Countries are the country names of the Prewarm API spec, followed by the
// names cdnflow adds for edges outside Asia-Pacific (documented in the README).
var Countries = []string{
	"india", "japan", "new_zealand", "australia", "malaysia", "china", "indonesia",
	"philippines", "singapore", "thailand", "vietnam", "south_korea",
	// cdnflow extensions
	"united_states", "canada", "south_africa", "united_kingdom", "germany", "france", "brazil",
}

// Edge is one cache server.
type Edge struct {
	// ID is the PoP code, e.g. ATL56-C1.
	ID      string `yaml:"id" json:"id"`
	Region  string `yaml:"region" json:"region"`
	Country string `yaml:"country" json:"country"`
	// Address is host:port of the edge's plain HTTP listener.
	Address string `yaml:"address" json:"address"`
	// HTTPSAddress is host:port of a TLS listener in front of the edge, if any.
	HTTPSAddress string `yaml:"httpsAddress,omitempty" json:"httpsAddress,omitempty"`
	// AdminAddress is host:port of the Varnish CLI (varnishd -T).
	AdminAddress string `yaml:"adminAddress" json:"adminAddress"`
	// ConnectorAddress is the loopback IP:port, as seen from the edge, of
	// the edge's origin connector (`cdnflow connector --listen`, a sidecar
	// sharing its network namespace): Varnish's only backend. Default
	// DefaultConnectorAddress; for a managed edge 127.0.0.1:0, a free port
	// `cdnflow dev` picks and writes back when it starts the connector.
	ConnectorAddress string `yaml:"connectorAddress,omitempty" json:"connectorAddress,omitempty"`
	// SecretFile holds the Varnish CLI secret (varnishd -S), also the key
	// of the edge's control token (edge/connector.ControlToken).
	SecretFile string `yaml:"secretFile" json:"secretFile"`
	Kind       string `yaml:"kind" json:"kind"`
	// Managed edges are started and stopped by `cdnflow dev` itself.
	Managed bool `yaml:"managed,omitempty" json:"managed,omitempty"`
	// Drain marks an edge on its way out of the fleet: no distribution,
	// prewarm or purge targets it, and the edge sync deletes this control
	// plane's entries from its site table while it answers. Remove the
	// edge from the file once GET /v1/edges shows it empty.
	Drain bool `yaml:"drain,omitempty" json:"drain,omitempty"`
	// Parent is the id of this edge's shield (docs/tiers.md): the edge's
	// connector fetches misses from the shield's Address instead of the
	// origin. Empty: the edge is a root (a shield, or an edge without
	// tiers) and fetches from the origin. One level only: a shield has no
	// parent.
	Parent string `yaml:"parent,omitempty" json:"parent,omitempty"`
}

// Inventory is the validated set of edges, in file order.
type Inventory struct {
	Edges []Edge `yaml:"edges" json:"edges"`
	byID  map[string]int
}

// DefaultConnectorAddress is an edge's connectorAddress when the inventory
// gives none: the port `cdnflow connector` listens on by default.
const DefaultConnectorAddress = "127.0.0.1:6090"

// ConnectorPort is the port of ConnectorAddress (validated by Parse/New).
func (e Edge) ConnectorPort() int {
	ap, err := netip.ParseAddrPort(e.ConnectorAddress)
	if err != nil {
		return 0
	}
	return int(ap.Port())
}

var edgeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// Load reads and validates an inventory file (YAML or JSON).
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read edge inventory %s: %w", path, err)
	}
	inv, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("edge inventory %s: %w", path, err)
	}
	return inv, nil
}

// Parse decodes and validates inventory bytes. JSON is valid YAML, so one
// decoder serves both formats; unknown fields are rejected so typos surface.
func Parse(data []byte) (*Inventory, error) {
	var inv Inventory
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&inv); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := inv.validate(); err != nil {
		return nil, err
	}
	return &inv, nil
}

// New validates edges given in code (tests, dev defaults).
func New(edges []Edge) (*Inventory, error) {
	inv := Inventory{Edges: append([]Edge(nil), edges...)}
	if err := inv.validate(); err != nil {
		return nil, err
	}
	return &inv, nil
}

func (inv *Inventory) validate() error {
	if len(inv.Edges) == 0 {
		return errors.New("no edges defined")
	}
	inv.byID = make(map[string]int, len(inv.Edges))
	var errs []error
	for i := range inv.Edges {
		e := &inv.Edges[i]
		if e.Kind == "" {
			e.Kind = KindVarnish
		}
		e.Region = strings.ToLower(strings.TrimSpace(e.Region))
		e.Country = strings.ToLower(strings.TrimSpace(e.Country))
		where := fmt.Sprintf("edge %d (%q)", i, e.ID)
		if !edgeIDPattern.MatchString(e.ID) {
			errs = append(errs, fmt.Errorf("%s: id must be 1-64 letters, digits, '-' or '_'", where))
		} else if _, dup := inv.byID[e.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate id", where))
		} else {
			inv.byID[e.ID] = i
		}
		if !contains(Regions, e.Region) {
			errs = append(errs, fmt.Errorf("%s: unknown region %q (valid: %s)", where, e.Region, strings.Join(Regions, ", ")))
		}
		if !contains(Countries, e.Country) {
			errs = append(errs, fmt.Errorf("%s: unknown country %q (valid: %s)", where, e.Country, strings.Join(Countries, ", ")))
		}
		if e.Kind != KindVarnish {
			errs = append(errs, fmt.Errorf("%s: unknown kind %q (valid: %s)", where, e.Kind, KindVarnish))
		}
		if err := checkHostPort(e.Address); err != nil {
			errs = append(errs, fmt.Errorf("%s: address: %w", where, err))
		}
		if e.HTTPSAddress != "" {
			if err := checkHostPort(e.HTTPSAddress); err != nil {
				errs = append(errs, fmt.Errorf("%s: httpsAddress: %w", where, err))
			}
		}
		if err := checkHostPort(e.AdminAddress); err != nil {
			errs = append(errs, fmt.Errorf("%s: adminAddress: %w", where, err))
		}
		if e.ConnectorAddress == "" {
			e.ConnectorAddress = DefaultConnectorAddress
			if e.Managed {
				e.ConnectorAddress = "127.0.0.1:0"
			}
		}
		if ap, err := netip.ParseAddrPort(e.ConnectorAddress); err != nil || !ap.Addr().Unmap().IsLoopback() || (ap.Port() == 0 && !e.Managed) {
			errs = append(errs, fmt.Errorf("%s: connectorAddress %q must be a loopback IP:port (the connector beside the edge)", where, e.ConnectorAddress))
		}
		if e.SecretFile == "" {
			errs = append(errs, fmt.Errorf("%s: secretFile is required", where))
		}
	}
	errs = append(errs, inv.checkParents()...)
	if len(errs) == 0 && len(inv.Serving()) == 0 {
		errs = append(errs, errors.New("every edge is marked drain: no edge would serve (keep at least one edge without drain)"))
	}
	return errors.Join(errs...)
}

func checkHostPort(addr string) error {
	if addr == "" {
		return errors.New("is required")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q has no valid port", addr)
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Get returns the edge with the given id.
func (inv *Inventory) Get(id string) (Edge, bool) {
	i, ok := inv.byID[id]
	if !ok {
		return Edge{}, false
	}
	return inv.Edges[i], true
}

// IDs lists the ids of the serving edges (every edge not marked Drain),
// in inventory order: the edges distributions, prewarms and purges target.
func (inv *Inventory) IDs() []string {
	return idsOf(inv.Serving())
}

// AllIDs lists every edge id, draining ones included, in inventory order.
func (inv *Inventory) AllIDs() []string {
	return idsOf(inv.Edges)
}

// Draining lists the ids of the edges marked Drain, in inventory order.
func (inv *Inventory) Draining() []string {
	var ids []string
	for _, e := range inv.Edges {
		if e.Drain {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// Serving lists the edges not marked Drain, in inventory order.
func (inv *Inventory) Serving() []Edge {
	out := make([]Edge, 0, len(inv.Edges))
	for _, e := range inv.Edges {
		if !e.Drain {
			out = append(out, e)
		}
	}
	return out
}

func idsOf(edges []Edge) []string {
	ids := make([]string, len(edges))
	for i, e := range edges {
		ids[i] = e.ID
	}
	return ids
}

// Target types of the Prewarm API.
const (
	TargetPoP     = "pop"
	TargetRegion  = "region"
	TargetCountry = "country"
)

// SelectionError is returned for targets that name nothing in the inventory;
// its message lists the valid values so API callers can correct the request.
type SelectionError struct{ Msg string }

func (e *SelectionError) Error() string { return e.Msg }

// Select resolves a Prewarm-style target to serving edges, in inventory
// order: a draining edge is never selected, and a PoP target naming one is
// a *SelectionError. values may be ["all"] for region and country targets.
func (inv *Inventory) Select(targetType string, values []string) ([]Edge, error) {
	if len(values) == 0 {
		return nil, &SelectionError{Msg: "region must name at least one " + targetType}
	}
	all := len(values) == 1 && strings.EqualFold(values[0], "all")
	var field func(Edge) string
	var known []string
	switch targetType {
	case TargetPoP:
		if all {
			return nil, &SelectionError{Msg: `"all" is only valid for target_type region or country; list PoPs: ` + strings.Join(inv.IDs(), ", ")}
		}
		field = func(e Edge) string { return e.ID }
		known = inv.IDs()
	case TargetRegion:
		field = func(e Edge) string { return e.Region }
		known = Regions
	case TargetCountry:
		field = func(e Edge) string { return e.Country }
		known = Countries
	default:
		return nil, &SelectionError{Msg: fmt.Sprintf("unknown target_type %q (valid: pop, region, country)", targetType)}
	}
	if all {
		return inv.Serving(), nil
	}
	want := make(map[string]bool, len(values))
	var unknown []string
	for _, v := range values {
		if targetType != TargetPoP {
			v = strings.ToLower(strings.TrimSpace(v))
		}
		if !contains(known, v) {
			if e, ok := inv.Get(v); ok && targetType == TargetPoP && e.Drain {
				return nil, &SelectionError{Msg: fmt.Sprintf("PoP %s is draining (leaving the fleet): no job targets it (serving PoPs: %s)", v, strings.Join(known, ", "))}
			}
			unknown = append(unknown, v)
			continue
		}
		want[v] = true
	}
	if len(unknown) > 0 {
		sorted := append([]string(nil), known...)
		sort.Strings(sorted)
		return nil, &SelectionError{Msg: fmt.Sprintf("unknown %s %s (valid: %s)", targetType, strings.Join(quoteAll(unknown), ", "), strings.Join(sorted, ", "))}
	}
	if targetType == TargetRegion && want["apac"] {
		for _, r := range apacRegions {
			want[r] = true
		}
	}
	var out []Edge
	for _, e := range inv.Serving() {
		if want[field(e)] {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, &SelectionError{Msg: fmt.Sprintf("no edge in the inventory serves %s %s (this inventory serves: %s)",
			targetType, strings.Join(values, ", "), strings.Join(inv.served(field), ", "))}
	}
	return out, nil
}

// apacRegions are the region codes inside Asia-Pacific: target region
// "apac" selects their edges too (the Prewarm spec lists apac beside jp,
// au and cn; an Asia-Pacific prewarm is expected to reach Tokyo).
var apacRegions = []string{"jp", "au", "cn"}

// served lists the distinct values of field over the serving edges,
// sorted: what a target of that type can name here.
func (inv *Inventory) served(field func(Edge) string) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range inv.Serving() {
		if v := field(e); !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func quoteAll(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strconv.Quote(v)
	}
	return out
}
