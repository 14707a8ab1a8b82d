package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge/varnishadm"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/workflows"
)

// Distribution applies distributions to edges and sends callbacks.
type Distribution struct {
	Temporal  client.Client
	TaskQueue string
	Inventory *inventory.Inventory
	// DefaultOrigin (host:port) serves hosts without a distribution.
	DefaultOrigin         string
	AllowPrivateCallbacks bool
	// PurgeACL goes into every edge's VCL: who may PURGE and BAN.
	PurgeACL []string
	// HeartbeatTimeout is handed to reconcilers started here.
	HeartbeatTimeout time.Duration
	Logger           *zap.Logger
}

// RequestEdgeApply hands a distribution's desired state to the reconciler
// of every edge, starting reconcilers on first use.
func (a *Distribution) RequestEdgeApply(ctx context.Context, req workflows.EdgeApplyRequest) error {
	for _, id := range req.EdgeIDs {
		_, err := a.Temporal.SignalWithStartWorkflow(ctx, workflows.ReconcilerWorkflowID(id), workflows.SignalDesiredSite, req.Spec,
			client.StartWorkflowOptions{ID: workflows.ReconcilerWorkflowID(id), TaskQueue: a.TaskQueue},
			workflows.EdgeReconcilerWorkflow, workflows.ReconcilerState{EdgeID: id, HeartbeatTimeout: a.HeartbeatTimeout})
		if err != nil {
			return fmt.Errorf("signal reconciler of %s: %w", id, err)
		}
	}
	return nil
}

// SiteOf turns a distribution into what an edge enforces.
func SiteOf(s workflows.SiteSpec) (vcl.Site, error) {
	c := s.Config
	site := vcl.Site{
		Name:               s.Domain,
		Hosts:              append([]string{s.Domain}, c.Aliases()...),
		ForwardHostHeader:  c.ForwardHostHeader,
		ReferrerType:       c.ReferrerType,
		AllowEmptyReferrer: c.IsAllowWhenEmptyReferrer,
		Suspended:          s.Suspended,
	}
	if c.UseOrigin == "N" {
		age := c.MaxAge
		if age == 0 {
			age = 604800
		}
		site.TTL = time.Duration(age) * time.Second
	}
	for _, r := range strings.Split(c.Referrers, "\n") {
		if r = strings.TrimSpace(r); r != "" {
			site.Referrers = append(site.Referrers, r)
		}
	}
	if len(c.Origins) > 0 {
		site.OriginPath = c.Origins[0].OriginPath
	}
	for _, o := range c.Origins {
		port := OriginHTTPPort(o, c.UseOriginHTTPProtocolDowngrade)
		if port == 0 {
			return site, fmt.Errorf("origin %s has only an HTTPS port; Varnish edges fetch over HTTP", o.Origin)
		}
		site.Origins = append(site.Origins, vcl.Backend{Host: o.Origin, Port: port})
	}
	return site, nil
}

// OriginHTTPPort is the port edges fetch from: port, else httpPort, else —
// with useOriginHttpProtocolDowngrade — 80 for an HTTPS-only origin.
func OriginHTTPPort(o workflows.Origin, downgrade bool) int {
	switch {
	case o.Port != 0:
		return o.Port
	case o.HTTPPort != 0:
		return o.HTTPPort
	case downgrade:
		return 80
	}
	return 0
}

// ApplyEdgeVCL renders every live site of an edge and loads the VCL.
func (a *Distribution) ApplyEdgeVCL(ctx context.Context, in workflows.ApplyEdgeVCLInput) error {
	e, ok := a.Inventory.Get(in.EdgeID)
	if !ok {
		return temporal.NewNonRetryableApplicationError("edge "+in.EdgeID+" is not in the inventory", "UnknownEdge", nil)
	}
	cfg := vcl.Config{EdgeID: e.ID, PurgeACL: a.PurgeACL}
	if a.DefaultOrigin != "" {
		host, port, err := net.SplitHostPort(a.DefaultOrigin)
		if err == nil {
			var p int
			_, _ = fmt.Sscanf(port, "%d", &p)
			cfg.DefaultBackend = &vcl.Backend{Host: host, Port: p}
		}
	}
	for _, s := range in.Sites {
		site, err := SiteOf(s)
		if err != nil {
			return temporal.NewNonRetryableApplicationError(err.Error(), "BadSite", nil)
		}
		cfg.Sites = append(cfg.Sites, site)
	}
	src, err := vcl.Render(cfg)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("render vcl: "+err.Error(), "BadSite", err)
	}
	defer keepAlive(ctx)()
	conn, err := varnishadm.DialSecretFile(ctx, e.AdminAddress, e.SecretFile)
	if err != nil {
		return err
	}
	defer conn.Close()
	name := fmt.Sprintf("cdnflow_%d", time.Now().UnixNano())
	if err := conn.Reload(ctx, name, src); err != nil {
		return fmt.Errorf("load vcl on %s: %w", e.ID, err)
	}
	a.Logger.Info("vcl applied", zap.String("edgeId", e.ID), zap.Int("sites", len(in.Sites)),
		zap.String("workflowId", activity.GetInfo(ctx).WorkflowExecution.ID))
	return nil
}

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
	Callback     *workflows.Callback
}

type callbackOrigin struct {
	Origin     string `json:"origin"`
	OriginPath string `json:"originPath"`
	Port       string `json:"port"`
}

// DistributionCallback delivers one lifecycle notification. Targets in
// loopback, private, link-local or metadata ranges are refused (after DNS
// resolution, on every connection including redirects) unless allowed.
func (a *Distribution) DistributionCallback(ctx context.Context, req workflows.CallbackRequest) error {
	st := req.State
	target := strings.NewReplacer("{appKey}", url.QueryEscape(st.AppKey), "{status}", url.QueryEscape(st.Status), "{domain}", url.QueryEscape(st.Domain)).Replace(req.Callback.URL)
	var body callbackBody
	body.Header.IsSuccessful = st.Status != workflows.StatusError
	body.Header.ResultMessage = "SUCCESS"
	if st.Status == workflows.StatusError {
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
		body.Distribution.Origins = append(body.Distribution.Origins, callbackOrigin{Origin: o.Origin, OriginPath: o.OriginPath, Port: fmt.Sprint(OriginHTTPPort(o, c.UseOriginHTTPProtocolDowngrade))})
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
		return temporal.NewNonRetryableApplicationError("callback url: "+err.Error(), "CallbackRefused", err)
	}
	if rdr != nil {
		httpReq.Header.Set("Content-Type", "application/json")
	}
	resp, err := CallbackClient(a.AllowPrivateCallbacks).Do(httpReq)
	if err != nil {
		var refused *RefusedAddressError
		if errors.As(err, &refused) {
			return temporal.NewNonRetryableApplicationError(err.Error(), "CallbackRefused", err)
		}
		return fmt.Errorf("callback %s: %w", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("callback answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// RefusedAddressError is a callback target in a range cdnflow will not call.
type RefusedAddressError struct{ IP net.IP }

func (e *RefusedAddressError) Error() string {
	return fmt.Sprintf("callback target %s is in a loopback, private, link-local or metadata range", e.IP)
}

// CallbackClient checks every resolved address right before connecting,
// which also covers redirects and DNS rebinding.
func CallbackClient(allowPrivate bool) *http.Client {
	if allowPrivate {
		return callbackClient(nil)
	}
	return callbackClient(func(ip net.IP, _ string) bool { return forbidden(ip) })
}

// callbackClient refuses every connection refuse says no to; nil allows all.
func callbackClient(refuse func(ip net.IP, port string) bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if refuse != nil {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, port, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil || refuse(ip, port) {
				return &RefusedAddressError{IP: ip}
			}
			return nil
		}
	}
	tr := &http.Transport{Proxy: nil, DialContext: dialer.DialContext, TLSHandshakeTimeout: 5 * time.Second}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

func forbidden(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.Equal(net.ParseIP("169.254.169.254")) ||
		ip.Equal(net.ParseIP("fd00:ec2::254")) || sharedAddressSpace.Contains(ip)
}

// sharedAddressSpace is 100.64.0.0/10 (RFC 6598, carrier-grade NAT), which
// net.IP.IsPrivate does not cover; some clouds serve instance metadata
// there (Alibaba Cloud: 100.100.100.200).
var sharedAddressSpace = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}
