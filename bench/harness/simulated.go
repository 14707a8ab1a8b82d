package harness

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge/connector"
)

// simulatedCreated is the creation time of every simulated
// distribution's generation (fixed, so every run has the same tables).
var simulatedCreated = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// SimulatedSpec is the i-th simulated distribution (dNNNNN.fleet.test,
// appKey "bench") at version, fetching from origin.fleet.test under path.
func SimulatedSpec(i, version int, path string) distribution.SiteSpec {
	domain := fmt.Sprintf("d%05d.fleet.test", i)
	return distribution.SiteSpec{WorkflowID: "distribution/bench/" + domain, AppKey: "bench", Domain: domain, Version: version,
		Created: simulatedCreated, Config: distribution.Config{UseOrigin: "Y", Origins: []distribution.Origin{{Origin: "origin.fleet.test", Port: 80, OriginPath: path}}}}
}

// Simulated is n distributions that exist only as desired state and as
// site table entries: Specs for the edge sync's desired state, Base for
// every stand-in's starting table (entries owned by controlPlane, as the
// sync would have put them). They stand for a fleet's distributions in
// the benches, without n distribution workflows.
type Simulated struct {
	Specs []distribution.SiteSpec
	Base  *Base
}

// NewSimulated makes n simulated distributions at version 1 under /v1.
func NewSimulated(n int, controlPlane string) (*Simulated, error) {
	sim := &Simulated{}
	entries := make([]connector.Site, 0, n)
	for i := 0; i < n; i++ {
		s := SimulatedSpec(i, 1, "/v1")
		sim.Specs = append(sim.Specs, s)
		e, err := activities.EntryOf(s)
		if err != nil {
			return nil, fmt.Errorf("simulated distribution %s: %w", s.Domain, err)
		}
		e.Owner = controlPlane
		entries = append(entries, e)
	}
	base, err := NewBase(entries)
	if err != nil {
		return nil, err
	}
	sim.Base = base
	return sim, nil
}

// DesiredSites answers the simulated distributions' desired state
// (activities.DesiredSites), for worker.Deps.MoreDesired or a bench's
// own EdgeSync.
func (s *Simulated) DesiredSites(context.Context) (activities.Desired, error) {
	d := activities.Desired{Specs: slices.Clone(s.Specs)}
	for _, sp := range s.Specs {
		d.Running = append(d.Running, sp.Domain)
	}
	return d, nil
}
