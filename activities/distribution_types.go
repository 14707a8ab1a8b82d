package activities

import "github.com/cdnflow/cdnflow/distribution"

// CallbackRequest is one lifecycle notification.
type CallbackRequest struct {
	Callback distribution.Callback `json:"callback"`
	State    distribution.State    `json:"state"`
}

// ApplySiteInput asks for Spec on every edge of EdgeIDs (ApplySite).
type ApplySiteInput struct {
	EdgeIDs []string              `json:"edgeIds"`
	Spec    distribution.SiteSpec `json:"spec"`
}
