package activities

import "github.com/cdnflow/cdnflow/distribution"

// CallbackRequest is one lifecycle notification.
type CallbackRequest struct {
	Callback distribution.Callback `json:"callback"`
	State    distribution.State    `json:"state"`
}

// ApplySiteInput asks for Spec on every serving edge of the worker's
// inventory (ApplySite): the edges are the fleet's when the change is
// applied, not when the distribution was created.
type ApplySiteInput struct {
	Spec distribution.SiteSpec `json:"spec"`
	// EdgeIDs limits the change to these edges (a rollout wave, or the
	// edges a failed rollout reverts); ids not serving in the worker's
	// inventory are skipped. Empty: every serving edge.
	EdgeIDs []string `json:"edgeIds,omitempty"`
}
