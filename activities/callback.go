package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/distribution"
)

// callbackBody is the NHN callback body.
type callbackBody struct {
	Header struct {
		ResultCode    int    `json:"resultCode"`
		ResultMessage string `json:"resultMessage"`
		IsSuccessful  bool   `json:"isSuccessful"`
	} `json:"header"`
	Distribution callbackDistribution `json:"distribution"`
}

type callbackDistribution struct {
	AppKey       string           `json:"appKey"`
	Domain       string           `json:"domain"`
	DomainAlias  string           `json:"domainAlias"`
	Region       string           `json:"region"`
	Description  string           `json:"description"`
	Status       string           `json:"status"`
	CreateTime   int64            `json:"createTime"`
	UseOrigin    string           `json:"useOrigin"`
	MaxAge       string           `json:"maxAge"`
	ReferrerType string           `json:"referrerType"`
	Referrers    string           `json:"referrers"`
	DeleteTime   *int64           `json:"deleteTime"`
	Origins      []callbackOrigin `json:"origins"`
	Callback     *distribution.Callback
}

type callbackOrigin struct {
	Origin     string `json:"origin"`
	OriginPath string `json:"originPath"`
	Port       string `json:"port"`
}

// DistributionCallback delivers one lifecycle notification. Targets in
// loopback, private, link-local or metadata ranges are refused (after DNS
// resolution, on every connection including redirects) unless allowed.
func (a *Distribution) DistributionCallback(ctx context.Context, req CallbackRequest) error {
	st := req.State
	target := strings.NewReplacer("{appKey}", url.QueryEscape(st.AppKey), "{status}", url.QueryEscape(st.Status), "{domain}", url.QueryEscape(st.Domain)).Replace(req.Callback.URL)
	var body callbackBody
	body.Header.IsSuccessful = st.Status != distribution.StatusError
	body.Header.ResultMessage = "SUCCESS"
	if st.Status == distribution.StatusError {
		body.Header.ResultCode = 50000
		body.Header.ResultMessage = st.LastError
	}
	c := st.Config
	body.Distribution = callbackDistribution{
		AppKey: st.AppKey, Domain: st.Domain, DomainAlias: c.DomainAlias, Region: c.Region,
		Description: c.Description, Status: st.Status, CreateTime: st.CreateTime, UseOrigin: c.UseOrigin,
		MaxAge: fmt.Sprint(c.MaxAge), ReferrerType: c.ReferrerType, Referrers: c.Referrers,
		Callback: c.Callback,
	}
	if st.DeleteTime != 0 {
		dt := st.DeleteTime
		body.Distribution.DeleteTime = &dt
	}
	for _, o := range c.Origins {
		_, port := o.Endpoint(c.UseOriginHTTPProtocolDowngrade)
		body.Distribution.Origins = append(body.Distribution.Origins, callbackOrigin{Origin: o.Origin, OriginPath: o.OriginPath, Port: fmt.Sprint(port)})
	}
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode callback: %w", err)
	}
	method := strings.ToUpper(req.Callback.HTTPMethod)
	var rdr *bytes.Reader
	if method != http.MethodGet {
		rdr = bytes.NewReader(data)
	}
	var httpReq *http.Request
	if rdr != nil {
		httpReq, err = http.NewRequestWithContext(ctx, method, target, rdr)
	} else {
		httpReq, err = http.NewRequestWithContext(ctx, method, target, nil)
	}
	if err != nil {
		err = redactCallbackError(err)
		return temporal.NewNonRetryableApplicationError("callback url: "+err.Error(), ErrCallbackRefused, err)
	}
	if rdr != nil {
		httpReq.Header.Set("Content-Type", "application/json")
	}
	resp, err := CallbackClient(a.AllowPrivateCallbacks).Do(httpReq)
	if err != nil {
		err = redactCallbackError(err)
		var refused *RefusedAddressError
		if errors.As(err, &refused) {
			return temporal.NewNonRetryableApplicationError(err.Error(), ErrCallbackRefused, err)
		}
		return fmt.Errorf("callback %s: %w", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("callback answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// redactCallbackError keeps a callback URL's query, fragment and userinfo
// (where tenants put their tokens) out of an error: the SDK logs activity
// errors in plain text, whatever the payload codec seals. A *url.Error
// (net/http's error for a request) gets its URL cut to scheme, host and
// path; other errors are returned as they are.
func redactCallbackError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	cut := *ue
	cut.URL = redactURL(ue.URL)
	return &cut
}

// redactURL is raw without its userinfo, query and fragment ("<callback
// url>" when it does not parse).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<callback url>"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
