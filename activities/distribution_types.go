package activities

import "strings"

// CDN status codes of the NHN v1.5 API.
const (
	StatusOpening    = "OPENING"
	StatusOpen       = "OPEN"
	StatusModifying  = "MODIFYING"
	StatusResume     = "RESUME"
	StatusSuspending = "SUSPENDING"
	StatusSuspend    = "SUSPEND"
	StatusClosing    = "CLOSING"
	StatusClose      = "CLOSE"
	StatusError      = "ERROR"
)

// Origin is one origin server of a distribution (NHN origins[]).
type Origin struct {
	Origin     string `json:"origin"`
	Port       int    `json:"port,omitempty"`
	HTTPPort   int    `json:"httpPort,omitempty"`
	HTTPSPort  int    `json:"httpsPort,omitempty"`
	OriginPath string `json:"originPath,omitempty"`
}

// Callback is where lifecycle changes are reported (NHN callback).
type Callback struct {
	HTTPMethod string `json:"httpMethod"`
	URL        string `json:"url"`
}

// DistributionConfig is the desired configuration of a distribution, with
// defaults applied. Field names and JSON tags follow NHN v1.5.
type DistributionConfig struct {
	Region                         string    `json:"region"`
	UseOriginHTTPProtocolDowngrade bool      `json:"useOriginHttpProtocolDowngrade"`
	ForwardHostHeader              string    `json:"forwardHostHeader"`
	UseOrigin                      string    `json:"useOrigin"`
	ReferrerType                   string    `json:"referrerType"`
	Description                    string    `json:"description,omitempty"`
	DomainAlias                    string    `json:"domainAlias,omitempty"`
	MaxAge                         int64     `json:"maxAge"`
	Referrers                      string    `json:"referrers,omitempty"`
	IsAllowWhenEmptyReferrer       bool      `json:"isAllowWhenEmptyReferrer"`
	Origins                        []Origin  `json:"origins"`
	Callback                       *Callback `json:"callback,omitempty"`
}

// Aliases splits DomainAlias on NHN's '\n' token.
func (c DistributionConfig) Aliases() []string {
	var out []string
	for _, a := range strings.Split(c.DomainAlias, "\n") {
		if a = strings.ToLower(strings.TrimSpace(a)); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// DistributionState is a distribution entity's state: what
// workflows.QueryDistribution answers and every callback carries.
type DistributionState struct {
	AppKey string `json:"appKey"`
	Domain string `json:"domain"`
	Status string `json:"status"`
	// Seq is NHN's distributionSeq.
	Seq        int64              `json:"seq,omitempty"`
	Config     DistributionConfig `json:"config"`
	CreateTime int64              `json:"createTime"` // epoch ms
	DeleteTime int64              `json:"deleteTime,omitempty"`
	// LastError says why the distribution is in ERROR.
	LastError string `json:"lastError,omitempty"`
	// Callbacks are the latest lifecycle notifications and their outcome.
	Callbacks []CallbackResult `json:"callbacks,omitempty"`
}

// CallbackResult records one callback delivery.
type CallbackResult struct {
	Status string `json:"status"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
}

// Hosts are the Host names edges serve the distribution under.
func (s DistributionState) Hosts() []string {
	return append([]string{strings.ToLower(s.Domain)}, s.Config.Aliases()...)
}

// SiteSpec is a distribution's desired state on an edge.
type SiteSpec struct {
	WorkflowID string `json:"workflowId"`
	AppKey     string `json:"appKey"`
	Domain     string `json:"domain"`
	Version    int    `json:"version"`
	// Created is the distribution's creation time (epoch ms): with
	// Version, the generation of the edge site table entry.
	Created   int64              `json:"created,omitempty"`
	Config    DistributionConfig `json:"config"`
	Suspended bool               `json:"suspended,omitempty"`
	Deleted   bool               `json:"deleted,omitempty"`
}

// CallbackRequest is one lifecycle notification.
type CallbackRequest struct {
	Callback Callback          `json:"callback"`
	State    DistributionState `json:"state"`
}

// ApplySiteInput asks for Spec on every edge of EdgeIDs (ApplySite).
type ApplySiteInput struct {
	EdgeIDs []string `json:"edgeIds"`
	Spec    SiteSpec `json:"spec"`
}
