package workflows

import (
	"strconv"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/distribution"
)

// MaxVersions is how many versions a distribution keeps (the newest; the
// issue asks for 20 at least). They travel in the workflow state and
// across continue-as-new, so this bounds that payload: 32 configs of at
// most ~15 KiB each (10 origins, 1 KiB referrers, 255-byte description).
const MaxVersions = 32

// ChangeRequest is the argument of UpdateModify, UpdateSuspend and
// UpdateResume: who asks (KeyID: the appKey the API authenticated,
// RequestID: the API's request id) and, for UpdateModify, the new
// configuration. IfMatch, when not 0, is the version the caller last
// read: the change is refused (ErrVersionMismatch) unless it is still the
// current one.
type ChangeRequest struct {
	Config    *distribution.Config `json:"config,omitempty"`
	KeyID     string               `json:"keyId,omitempty"`
	RequestID string               `json:"requestId,omitempty"`
	IfMatch   int                  `json:"ifMatch,omitempty"`
}

// RollbackRequest is the argument of UpdateRollback: make a new version
// equal to Version's configuration and suspended flag and apply it;
// Immediate skips the rollout's waves. KeyID, RequestID and IfMatch are
// as in ChangeRequest.
type RollbackRequest struct {
	Version   int    `json:"version"`
	Immediate bool   `json:"immediate,omitempty"`
	KeyID     string `json:"keyId,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	IfMatch   int    `json:"ifMatch,omitempty"`
}

// checkIfMatch refuses a change made against another version than the
// current one. Validators run it: the validator and the start of its
// handler (which records the next version) run without a yield between
// them, so of two writers holding the same version only one passes.
func (d *entity) checkIfMatch(ifMatch int) error {
	if ifMatch != 0 && ifMatch != d.st.Version {
		return temporal.NewApplicationError("distribution "+d.st.Domain+" is at version "+strconv.Itoa(d.st.Version)+", not "+strconv.Itoa(ifMatch), ErrVersionMismatch)
	}
	return nil
}

// version is the kept version n, if it is kept.
func (d *entity) version(n int) (distribution.Version, bool) {
	for _, v := range d.in.Versions {
		if v.N == n {
			return v, true
		}
	}
	return distribution.Version{}, false
}

// record appends the next version (the current number + 1) and keeps the
// newest MaxVersions.
func (d *entity) record(ctx workflow.Context, v distribution.Version) distribution.Version {
	v.N = d.st.Version + 1
	v.At = workflow.Now(ctx).UnixMilli()
	d.st.Version = v.N
	d.in.Versions = keepNewest(append(d.in.Versions, v), MaxVersions)
	return v
}

// keepNewest is the last max of list (list itself when it is shorter).
func keepNewest(list []distribution.Version, max int) []distribution.Version {
	if len(list) <= max {
		return list
	}
	return append([]distribution.Version(nil), list[len(list)-max:]...)
}

// initVersions records the creation as version 1 when the workflow was
// started without it (the API passes it in DistributionInit.Versions).
func (d *entity) initVersions() {
	if len(d.in.Versions) == 0 && !d.in.Opened {
		st := d.st
		d.in.Versions = []distribution.Version{{N: 1, At: st.CreateTime, Action: distribution.ActionCreate, Config: st.Config}}
	}
	if n := len(d.in.Versions); n > 0 && d.st.Version < d.in.Versions[n-1].N {
		d.st.Version = d.in.Versions[n-1].N
	}
}

// registerVersions answers QueryVersions and takes UpdateRollback.
func (d *entity) registerVersions(ctx workflow.Context, guard func(allowed ...string) func() error) error {
	if err := workflow.SetQueryHandler(ctx, QueryVersions, func() ([]distribution.Version, error) { return d.in.Versions, nil }); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateRollback, func(ctx workflow.Context, req RollbackRequest) (distribution.State, error) {
		d.busy = true
		defer func() { d.busy = false }()
		to, _ := d.version(req.Version)
		d.record(ctx, distribution.Version{Action: distribution.ActionRollback, KeyID: req.KeyID, RequestID: req.RequestID,
			Config: to.Config, Suspended: to.Suspended, RollbackOf: to.N})
		final := distribution.StatusOpen
		if to.Suspended {
			final = distribution.StatusSuspend
		}
		d.run(ctx, change{during: distribution.StatusModifying, final: final, cfg: to.Config, suspended: to.Suspended, immediate: req.Immediate})
		return *d.st, nil
	}, workflow.UpdateHandlerOptions{Validator: func(req RollbackRequest) error {
		if err := guard(distribution.StatusOpen, distribution.StatusSuspend, distribution.StatusError)(); err != nil {
			return err
		}
		if err := d.checkIfMatch(req.IfMatch); err != nil {
			return err
		}
		if _, ok := d.version(req.Version); !ok {
			return temporal.NewApplicationError(d.unknownVersion(req.Version), ErrUnknownVersion)
		}
		return nil
	}})
}

// unknownVersion says why n cannot be rolled back to: which versions are
// kept.
func (d *entity) unknownVersion(n int) string {
	msg := "distribution " + d.st.Domain + " keeps no version " + strconv.Itoa(n)
	if k := len(d.in.Versions); k > 0 {
		msg += " (it keeps " + strconv.Itoa(d.in.Versions[0].N) + " to " + strconv.Itoa(d.in.Versions[k-1].N) + ")"
	}
	return msg
}
