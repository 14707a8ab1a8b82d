package service

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/workflows"
)

// Errors of distribution changes the HTTP layer maps to NHN codes.
var (
	ErrInvalidState = errors.New("invalid state")
	ErrInProgress   = errors.New("operation in progress")
)

// MaxDistributionsPerRequest bounds POST lists.
const MaxDistributionsPerRequest = 100

// DistributionView is a distribution as the API shows it (NHN fields).
type DistributionView struct {
	Domain                         string                 `json:"domain"`
	DomainAlias                    string                 `json:"domainAlias"`
	Region                         string                 `json:"region"`
	Description                    string                 `json:"description"`
	Status                         string                 `json:"status"`
	CreateTime                     int64                  `json:"createTime"`
	UseOrigin                      string                 `json:"useOrigin"`
	UseOriginHTTPProtocolDowngrade bool                   `json:"useOriginHttpProtocolDowngrade"`
	ForwardHostHeader              string                 `json:"forwardHostHeader"`
	MaxAge                         int64                  `json:"maxAge"`
	ReferrerType                   string                 `json:"referrerType"`
	Referrers                      string                 `json:"referrers"`
	IsAllowWhenEmptyReferrer       bool                   `json:"isAllowWhenEmptyReferrer"`
	Origins                        []distribution.Origin  `json:"origins"`
	Callback                       *distribution.Callback `json:"callback,omitempty"`
	// cdnflow's: why it is in ERROR, and the latest callback outcomes.
	LastError string                        `json:"lastError,omitempty"`
	Callbacks []distribution.CallbackResult `json:"callbacks,omitempty"`
	// CachePolicy is cdnflow's cache policy extension; absent: the default.
	CachePolicy *distribution.CachePolicy `json:"cachePolicy,omitempty"`
}

// ViewOf renders a distribution state for the API.
func ViewOf(st distribution.State) DistributionView {
	c := st.Config
	return DistributionView{
		Domain: st.Domain, DomainAlias: c.DomainAlias, Region: c.Region, Description: c.Description,
		Status: st.Status, CreateTime: st.CreateTime, UseOrigin: c.UseOrigin,
		UseOriginHTTPProtocolDowngrade: c.UseOriginHTTPProtocolDowngrade, ForwardHostHeader: c.ForwardHostHeader,
		MaxAge: c.MaxAge, ReferrerType: c.ReferrerType, Referrers: c.Referrers,
		IsAllowWhenEmptyReferrer: c.IsAllowWhenEmptyReferrer, Origins: c.Origins, Callback: c.Callback,
		LastError: st.LastError, Callbacks: st.Callbacks, CachePolicy: c.CachePolicy,
	}
}

// CreateDistributions validates every body first (all or nothing), then
// starts one entity workflow per distribution with a generated domain;
// each starts at version 1, made by caller.
func (s *Service) CreateDistributions(ctx context.Context, appKey string, bodies []DistributionBody, caller Caller) ([]DistributionView, error) {
	if len(bodies) == 0 {
		return nil, invalid("distributions must list at least one distribution")
	}
	if len(bodies) > MaxDistributionsPerRequest {
		return nil, invalid("distributions lists %d; at most %d per request", len(bodies), MaxDistributionsPerRequest)
	}
	configs := make([]distribution.Config, len(bodies))
	for i, b := range bodies {
		cfg, err := buildConfig(b, modeCreate, distribution.Config{})
		if err != nil {
			return nil, invalid("distributions[%d].%s", i, err.Error())
		}
		if err := s.checkOrigins(ctx, cfg); err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				return nil, invalid("distributions[%d].%s", i, ve.Msg)
			}
			return nil, err
		}
		if err := s.checkAliases(cfg); err != nil {
			return nil, prefixed(i, err)
		}
		configs[i] = cfg
	}
	// Every alias is claimed before any distribution starts: a request
	// naming a host another distribution holds (or one twice) starts none.
	domains, err := s.claimCreations(ctx, appKey, configs)
	if err != nil {
		return nil, err
	}
	// One counter update for the whole request and the workflows started
	// side by side: 100 distributions in one POST cost one round trip,
	// not 200, so 100 created at once are all OPEN within 10 s.
	first, err := s.ReserveSeqs(ctx, "distribution", len(configs))
	if err != nil {
		s.releaseCreations(appKey, domains, configs)
		return nil, err
	}
	views := make([]DistributionView, len(configs))
	errs := make([]error, len(configs))
	sem := make(chan struct{}, createParallelism)
	var wg sync.WaitGroup
	for i, cfg := range configs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			st, err := s.startDistribution(ctx, appKey, domains[i], cfg, first+int64(i), caller)
			views[i], errs[i] = ViewOf(st), err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return views, nil
}

// createParallelism bounds the distribution workflows one POST starts at
// the same time.
const createParallelism = 16

// startDistribution starts the entity workflow of domain, whose aliases
// are claimed for it (claimCreations). Should the domain exist already
// (another random draw), the claims move to a new draw.
func (s *Service) startDistribution(ctx context.Context, appKey, domain string, cfg distribution.Config, seq int64, caller Caller) (distribution.State, error) {
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			drawn := s.drawDomain()
			if err := s.moveClaims(ctx, appKey, domain, drawn, cfg); err != nil {
				return distribution.State{}, err
			}
			domain = drawn
		}
		now := time.Now()
		st := distribution.State{AppKey: appKey, Domain: domain, Status: distribution.StatusOpening, Config: cfg, CreateTime: now.UnixMilli(), Seq: seq, Version: 1}
		id := workflows.DistributionWorkflowID(appKey, domain)
		opts := client.StartWorkflowOptions{
			ID:                    id,
			TaskQueue:             s.config.TaskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			// A worker in this process (dev) takes the first task in the
			// start's answer, with no trip through matching (issue 28).
			EnableEagerStart: true,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.KindAttr.ValueSet(workflows.KindDistribution),
				workflows.AppKeyAttr.ValueSet(appKey),
				workflows.DomainAttr.ValueSet(domain),
				workflows.StatusAttr.ValueSet(distribution.StatusOpening),
				workflows.SeqAttr.ValueSet(seq),
				workflows.CreatedAttr.ValueSet(now.UTC()),
			),
		}
		_, err := s.temporal.ExecuteWorkflow(ctx, opts, workflows.DistributionWorkflow, workflows.DistributionInit{
			State: st,
			Versions: []distribution.Version{{N: 1, At: st.CreateTime, Action: distribution.ActionCreate,
				KeyID: caller.KeyID, RequestID: caller.RequestID, Config: cfg}},
		})
		var taken *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &taken) {
			continue // the random name exists: draw another
		}
		if err != nil {
			s.releaseCreations(appKey, []string{domain}, []distribution.Config{cfg})
			return st, fmt.Errorf("start distribution: %w", err)
		}
		metrics.JobsStarted.WithLabelValues(workflows.KindDistribution).Inc()
		return st, nil
	}
	s.releaseCreations(appKey, []string{domain}, []distribution.Config{cfg})
	return distribution.State{}, errors.New("could not draw an unused domain name")
}

// drawDomain is a random distribution domain under the CDN base domain.
func (s *Service) drawDomain() string {
	return randomLabel(8) + "." + strings.ToLower(s.config.CDNBaseDomain)
}

const labelAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomLabel(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = labelAlphabet[int(b[i])%len(labelAlphabet)]
	}
	if b[0] >= '0' && b[0] <= '9' {
		b[0] = 'c' // a letter first reads better in a host name
	}
	return string(b)
}

// ListDistributions answers GET from visibility (which distributions,
// workflows.ListDistributions) and each entity's query (their state).
// Deleted ones are listed only when status=CLOSE is asked for.
func (s *Service) ListDistributions(ctx context.Context, appKey, domain, status string) ([]DistributionView, error) {
	q := workflows.DistributionQuery{AppKey: appKey}
	if domain != "" {
		q.Domain = strings.ToLower(domain)
		if !validHostname(q.Domain) {
			return nil, invalid("domain %q is not a valid domain name", q.Domain)
		}
	}
	if status != "" {
		if !validStatus(status) {
			return nil, invalid("status %q is not a CDN status code", status)
		}
		q.Status = status
	}
	q.Ended = status == distribution.StatusClose
	out := []DistributionView{}
	workersDown := false
	for l, err := range workflows.ListDistributions(ctx, s.temporal, q) {
		if err != nil {
			return nil, err
		}
		// Once no worker answers, every entry shows the last state its
		// workflow published in visibility, without waiting on another
		// query; a failed query falls back the same way.
		st := l.State
		if !workersDown {
			queried, err := s.distributionState(ctx, l.WorkflowID)
			switch {
			case isNotFound(err):
				continue // ended between list and query
			case err == nil:
				st = queried
			default:
				workersDown = errors.Is(err, ErrWorkersUnavailable)
			}
		}
		if status != "" && st.Status != status {
			continue
		}
		out = append(out, ViewOf(st))
		if len(out) >= 5000 {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateTime > out[j].CreateTime })
	return out, nil
}

func validStatus(s string) bool {
	switch s {
	case distribution.StatusOpening, distribution.StatusOpen, distribution.StatusModifying, distribution.StatusResume,
		distribution.StatusSuspending, distribution.StatusSuspend, distribution.StatusClosing, distribution.StatusClose, distribution.StatusError:
		return true
	}
	return false
}

func (s *Service) distributionState(ctx context.Context, wfID string) (distribution.State, error) {
	var st distribution.State
	v, err := s.query(ctx, wfID, workflows.QueryDistribution)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// UpdateDistribution applies PUT (partial=false) or PATCH (partial=true).
// It returns once the entity accepted the change (status MODIFYING); edges
// follow asynchronously and the callback reports the end.
func (s *Service) UpdateDistribution(ctx context.Context, appKey string, b DistributionBody, partial bool, caller Caller) error {
	st, cfg, err := s.changedConfig(ctx, appKey, b, partial)
	if err != nil {
		return err
	}
	if err := s.claimHosts(ctx, appKey, st.Domain, cfg); err != nil {
		return err
	}
	return s.update(ctx, appKey, st.Domain, workflows.UpdateModify, workflows.ChangeRequest{Config: &cfg, KeyID: caller.KeyID, RequestID: caller.RequestID})
}

// changedConfig validates a PUT or PATCH body against the distribution's
// current state and answers that state and the config the change asks for.
func (s *Service) changedConfig(ctx context.Context, appKey string, b DistributionBody, partial bool) (distribution.State, distribution.Config, error) {
	if b.Domain == nil || *b.Domain == "" {
		return distribution.State{}, distribution.Config{}, invalid("domain is required")
	}
	if b.Region != nil && !partial {
		// PUT has no region; ignore it like NHN rather than fail.
		b.Region = nil
	}
	st, err := s.DistributionByDomain(ctx, appKey, *b.Domain)
	if err != nil {
		return st, distribution.Config{}, err
	}
	mode := modePut
	if partial {
		mode = modePatch
	}
	base := st.Config
	if !partial {
		// PUT replaces; optional fields not given go back to their defaults.
		base = distribution.Config{Region: st.Config.Region, IsAllowWhenEmptyReferrer: true}
		if b.IsAllowWhenEmptyReferrer == nil {
			t := true
			b.IsAllowWhenEmptyReferrer = &t
		}
	}
	cfg, err := buildConfig(b, mode, base)
	if err != nil {
		return st, cfg, err
	}
	if err := s.checkAliases(cfg); err != nil {
		return st, cfg, err
	}
	if err := s.checkOrigins(ctx, cfg); err != nil {
		return st, cfg, err
	}
	return st, cfg, nil
}

// ChangeDistributions suspends, resumes or deletes each domain, for
// caller. Every domain is checked before any is changed.
func (s *Service) ChangeDistributions(ctx context.Context, appKey string, domains []string, update string, caller Caller) error {
	if len(domains) == 0 {
		return invalid("domains must list at least one domain")
	}
	if len(domains) > MaxDistributionsPerRequest {
		return invalid("domains lists %d; at most %d", len(domains), MaxDistributionsPerRequest)
	}
	for _, d := range domains {
		if _, err := s.DistributionByDomain(ctx, appKey, d); err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
	}
	var args []any
	if update != workflows.UpdateDelete {
		args = []any{workflows.ChangeRequest{KeyID: caller.KeyID, RequestID: caller.RequestID}}
	}
	for _, d := range domains {
		if err := s.update(ctx, appKey, d, update, args...); err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
	}
	return nil
}

func (s *Service) update(ctx context.Context, appKey, domain, name string, args ...any) error {
	h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.DistributionWorkflowID(appKey, domain),
		UpdateName:   name,
		Args:         args,
		WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	if err == nil {
		// A validator's rejection comes back as an already-completed
		// outcome; an accepted change is still running. Reading the outcome
		// with a cancelled context tells the two apart without waiting.
		done, cancel := context.WithCancel(ctx)
		cancel()
		err = h.Get(done, nil)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) {
			return nil
		}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case workflows.ErrInvalidState:
			return fmt.Errorf("%w: %s", ErrInvalidState, appErr.Message())
		case workflows.ErrOperationInFlight:
			return fmt.Errorf("%w: %s", ErrInProgress, appErr.Message())
		case workflows.ErrVersionMismatch:
			return fmt.Errorf("%w: %s", ErrVersionMismatch, appErr.Message())
		case workflows.ErrUnknownVersion:
			return invalid("%s", appErr.Message())
		}
	}
	if isNotFound(err) {
		return ErrUnknownDomain
	}
	return fmt.Errorf("%s %s: %w", name, domain, err)
}

// Host ownership (docs/nhn.md#host-ownership): every alias a change names
// is claimed for its distribution (workflows.ClaimHosts) before the change
// is accepted; a host another distribution of any appKey holds refuses
// the request as invalid (10001), naming the host only.

// checkAliases refuses aliases under the CDN's own base domain: those are
// the distributions' generated domains, each its own distribution's.
func (s *Service) checkAliases(cfg distribution.Config) error {
	base := strings.ToLower(s.config.CDNBaseDomain)
	for _, a := range cfg.Aliases() {
		if base != "" && (a == base || strings.HasSuffix(a, "."+base)) {
			return invalid("domainAlias %s is under %s, the domain of generated distribution domains; an alias is a host of your own", a, base)
		}
	}
	return nil
}

// hostRefusal is err as the caller sees it: a host in use is invalid
// input (10001) naming the host only; anything else is Temporal's.
func hostRefusal(err error) error {
	var inUse *workflows.HostInUseError
	if errors.As(err, &inUse) {
		return invalid("domainAlias: %s", inUse.Error())
	}
	return err
}

// claimHosts claims cfg's aliases for appKey's distribution domain before
// a PUT, PATCH or rollback is sent to it. A refusal leaves the hosts this
// call claimed to the claims' own check (workflows.HostClaimGrace): the
// distribution may name them through a concurrent change.
func (s *Service) claimHosts(ctx context.Context, appKey, domain string, cfg distribution.Config) error {
	hosts := cfg.Aliases()
	if len(hosts) == 0 {
		return nil
	}
	owner := workflows.HostOwner{AppKey: appKey, Domain: strings.ToLower(domain)}
	_, err := workflows.ClaimHosts(ctx, s.temporal, s.config.TaskQueue, owner, hosts)
	return hostRefusal(err)
}

// checkHosts is claimHosts for a dry run: it refuses, like the change
// would, when another distribution holds one of cfg's aliases, and claims
// nothing.
func (s *Service) checkHosts(ctx context.Context, appKey, domain string, cfg distribution.Config) error {
	owner := workflows.HostOwner{AppKey: appKey, Domain: strings.ToLower(domain)}
	return hostRefusal(workflows.CheckHostsFree(ctx, s.temporal, owner, cfg.Aliases()))
}

// claimCreations draws a domain for each config and claims its aliases
// for it, all side by side. On any refusal every claim made is released
// (their owners will never exist) and the refusal is answered.
func (s *Service) claimCreations(ctx context.Context, appKey string, configs []distribution.Config) ([]string, error) {
	domains := make([]string, len(configs))
	errs := make([]error, len(configs))
	claimed := make([][]string, len(configs))
	var wg sync.WaitGroup
	for i, cfg := range configs {
		domains[i] = s.drawDomain()
		hosts := cfg.Aliases()
		if len(hosts) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := workflows.HostOwner{AppKey: appKey, Domain: domains[i]}
			claimed[i], errs[i] = workflows.ClaimHosts(ctx, s.temporal, s.config.TaskQueue, owner, hosts)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		for j := range configs {
			s.releaseClaims(appKey, domains[j], claimed[j])
		}
		if len(configs) > 1 {
			return nil, prefixed(i, hostRefusal(err))
		}
		return nil, hostRefusal(err)
	}
	return domains, nil
}

// prefixed names body i of a POST in a validation error.
func prefixed(i int, err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return invalid("distributions[%d].%s", i, ve.Msg)
	}
	return err
}

// releaseCreations frees the aliases claimed for distributions that will
// not start (domains[i] with configs[i]).
func (s *Service) releaseCreations(appKey string, domains []string, configs []distribution.Config) {
	for i, d := range domains {
		s.releaseClaims(appKey, d, configs[i].Aliases())
	}
}

// releaseClaims frees hosts claimed for appKey's domain, which will not
// exist; a failed release is left to the claims' own check (logged).
func (s *Service) releaseClaims(appKey, domain string, hosts []string) {
	if len(hosts) == 0 {
		return
	}
	// Not the request's context: a cancelled request still releases.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	owner := workflows.HostOwner{AppKey: appKey, Domain: domain}
	if err := workflows.ReleaseHosts(ctx, s.temporal, owner, hosts); err != nil && s.logger != nil {
		s.logger.Warn("release host claims", zap.String("domain", domain), zap.Error(err))
	}
}

// moveClaims frees cfg's aliases claimed for domain from and claims them
// for domain to (a creation whose drawn domain existed already).
func (s *Service) moveClaims(ctx context.Context, appKey, from, to string, cfg distribution.Config) error {
	hosts := cfg.Aliases()
	if len(hosts) == 0 {
		return nil
	}
	s.releaseClaims(appKey, from, hosts)
	claimed, err := workflows.ClaimHosts(ctx, s.temporal, s.config.TaskQueue, workflows.HostOwner{AppKey: appKey, Domain: to}, hosts)
	if err != nil {
		s.releaseClaims(appKey, to, claimed)
		return hostRefusal(err)
	}
	return nil
}
