package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/workflows"
)

// ErrOverloaded means the workers are behind: more workflow tasks wait in
// the task queue than --max-backlog. New jobs of the tenants with the most
// running jobs are refused (429 / 30001 with Retry-After) until they catch
// up, rather than queued where their status could not be answered and
// their deadlines would run out unstarted.
var ErrOverloaded = errors.New("the workers are behind; retry in a few seconds")

// ErrTenantBusy means the tenant has --tenant-max-running jobs running.
var ErrTenantBusy = errors.New("this tenant has too many jobs running")

// LimitError is a refusal by one limit, with what the API tells the
// caller about it: Retry-After and the RateLimit header fields
// (draft-ietf-httpapi-ratelimit-headers-09: RateLimit-Policy
// `"<Policy>";q=<Quota>;w=<Window s>`, RateLimit `"<Policy>";r=0;t=<RetryAfter s>`).
// It unwraps to its kind: ErrRateLimited, ErrOverloaded or ErrTenantBusy.
type LimitError struct {
	Kind error
	// Policy names the limit: "purge-items", "purge-all", "tenant-jobs",
	// "backlog".
	Policy string
	// Quota requests or jobs per Window.
	Quota  int
	Window time.Duration
	// RetryAfter is when a retry can be admitted (at least 1 s).
	RetryAfter time.Duration
	Msg        string
}

func (e *LimitError) Error() string { return e.Msg }
func (e *LimitError) Unwrap() error { return e.Kind }

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1
// (RFC 9110 §10.2.3 delay-seconds).
func (e *LimitError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// Task queue priorities (Temporal's priority keys, 1 highest, 3 the
// default): the purge counter's updates first, then purge seqs, then
// prewarms.
const (
	counterPriority = 1
	purgePriority   = 2
)

// backlogTTL is how long one backlog or tenant reading serves: admission
// costs one DescribeTaskQueue and one visibility count per tenant per
// second per API process, not one per request.
const backlogTTL = time.Second

// maxBacklogAge refuses new jobs once the oldest queued workflow task has
// waited this long: the workers are not keeping up.
const maxBacklogAge = 5 * time.Second

type backlogGate struct {
	mu      sync.Mutex
	at      time.Time
	backlog int64
	age     time.Duration // of the oldest queued task
	// refreshing: one caller is reading the statistics.
	refreshing bool
	// tenants holds each tenant's running jobs (tenant.go); holds the
	// purge limits this process knows are held (purge_limit.go).
	tenants map[string]*tenantReading
	holds   purgeHolds
}

// admitWindow is how long a job this process admitted counts against its
// tenant by itself: visibility shows a started workflow within about a
// second, so a burst admitted in between must count before it does.
const admitWindow = 2 * time.Second

// admitJob admits n new jobs (workflows) of tenant, or refuses them with a
// *LimitError: when the tenant has TenantMaxRunning jobs running, or when
// the workers are behind (MaxBacklog) and the tenant has at least
// TenantBehindRunning running; a tenant with fewer is admitted even then,
// so one tenant's flood refuses only that tenant. Running jobs are
// counted in visibility (CdnflowAppKey = tenant), shared by every API
// process. A reading that fails admits: admission protects against
// overload, it must not become an outage of its own.
func (s *Service) admitJob(ctx context.Context, tenant string, n int) error {
	running, err := s.gate.tenantRunning(ctx, s, tenant)
	if err != nil {
		s.warn("count a tenant's running jobs", err)
		return nil
	}
	if max := s.config.TenantMaxRunning; max > 0 && running+int64(n) > int64(max) {
		return &LimitError{Kind: ErrTenantBusy, Policy: "tenant-jobs", Quota: max, Window: time.Second, RetryAfter: 2 * time.Second,
			Msg: fmt.Sprintf("%v: %d running or just admitted, at most %d (--tenant-max-running); retry once some have finished", ErrTenantBusy, running, max)}
	}
	if s.config.MaxBacklog > 0 && running >= int64(s.config.TenantBehindRunning) {
		if err := s.gate.behind(ctx, s, int64(s.config.MaxBacklog)); err != nil {
			if !errors.Is(err, ErrOverloaded) {
				s.warn("read task queue backlog", err)
				err = nil
			}
			if err != nil {
				return &LimitError{Kind: ErrOverloaded, Policy: "backlog", Quota: s.config.MaxBacklog, Window: time.Second,
					RetryAfter: 2 * time.Second, Msg: err.Error()}
			}
		}
	}
	s.gate.admitted(tenant, n)
	return nil
}

func (s *Service) warn(what string, err error) {
	if s.logger != nil {
		s.logger.Warn(what, zap.Error(err))
	}
}

// behind answers ErrOverloaded (wrapped, with the reading) while the
// oldest queued workflow task is older than maxBacklogAge or more than
// limit tasks are queued.
func (g *backlogGate) behind(ctx context.Context, s *Service, limit int64) error {
	if err := g.refresh(ctx, s); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.age > maxBacklogAge || g.backlog >= limit {
		return fmt.Errorf("%w (%d workflow tasks queued, the oldest for %s)", ErrOverloaded, g.backlog, g.age.Round(time.Second))
	}
	return nil
}

// refresh reads the task queue statistics at most once per backlogTTL.
// Only the very first reading is waited for: after it, one background
// read refreshes it while every caller, the one that found it stale
// included, decides on the last reading, so no new job (and no refusal)
// waits on a DescribeTaskQueue that takes seconds under load.
func (g *backlogGate) refresh(ctx context.Context, s *Service) error {
	g.mu.Lock()
	if time.Since(g.at) < backlogTTL || (g.refreshing && !g.at.IsZero()) {
		g.mu.Unlock()
		return nil
	}
	g.refreshing = true
	first := g.at.IsZero()
	g.mu.Unlock()
	if !first {
		go func() {
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			defer cancel()
			if err := g.readBacklog(bctx, s); err != nil {
				s.warn("read task queue backlog", err)
			}
		}()
		return nil
	}
	return g.readBacklog(ctx, s)
}

// refreshTimeout bounds a background reading.
const refreshTimeout = 10 * time.Second

// readBacklog reads the task queue statistics into the gate.
func (g *backlogGate) readBacklog(ctx context.Context, s *Service) error {
	resp, err := s.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     s.config.Namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: s.config.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW,
		ReportStats:   true,
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshing = false
	if err != nil {
		return fmt.Errorf("describe task queue %s: %w", s.config.TaskQueue, err)
	}
	st := resp.GetStats()
	g.at, g.backlog, g.age = time.Now(), st.GetApproximateBacklogCount(), st.GetApproximateBacklogAge().AsDuration()
	return nil
}

// tenantReading is one tenant's running jobs as visibility last counted
// them, plus the jobs this process admitted since (recent).
type tenantReading struct {
	at         time.Time
	used       time.Time
	running    int64
	refreshing bool
	recent     []admittedJobs
}

type admittedJobs struct {
	at time.Time
	n  int
}

// maxTenantReadings bounds the tenants remembered; past it, readings not
// used for a minute are dropped. Tenants are configured appKeys and key
// ids, so the bound is only reached by a misconfiguration.
const maxTenantReadings = 4096

// tenantRunning answers tenant's running jobs: the last visibility count
// plus the jobs this process admitted in the last admitWindow. A count
// older than backlogTTL is refreshed by one background read while callers
// go on with it; only a tenant's very first count is waited for, so a
// request (a refusal above all) waits on visibility once per tenant per
// process, not once per tenant per second.
func (g *backlogGate) tenantRunning(ctx context.Context, s *Service, tenant string) (int64, error) {
	g.mu.Lock()
	if g.tenants == nil {
		g.tenants = map[string]*tenantReading{}
	}
	r := g.tenants[tenant]
	if r == nil {
		g.pruneTenants()
		r = &tenantReading{}
		g.tenants[tenant] = r
	}
	now := time.Now()
	r.used = now
	stale := now.Sub(r.at) >= backlogTTL && !r.refreshing
	first := r.at.IsZero()
	if stale {
		r.refreshing = true
	}
	g.mu.Unlock()
	switch {
	case stale && first:
		if err := g.countTenant(ctx, s, tenant, r); err != nil {
			return 0, err
		}
	case stale:
		go func() {
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			defer cancel()
			if err := g.countTenant(bctx, s, tenant, r); err != nil {
				s.warn("count a tenant's running jobs", err)
			}
		}()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(r.recent) > 0 && now.Sub(r.recent[0].at) > admitWindow {
		r.recent = r.recent[1:]
	}
	total := r.running
	for _, a := range r.recent {
		total += int64(a.n)
	}
	return total, nil
}

// countTenant reads tenant's running jobs into r.
func (g *backlogGate) countTenant(ctx context.Context, s *Service, tenant string, r *tenantReading) error {
	n, err := s.countRunning(ctx, tenant)
	g.mu.Lock()
	defer g.mu.Unlock()
	r.refreshing = false
	if err == nil {
		r.at, r.running = time.Now(), n
	}
	return err
}

// admitted counts n jobs of tenant admitted now.
func (g *backlogGate) admitted(tenant string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.tenants[tenant]; r != nil {
		r.recent = append(r.recent, admittedJobs{time.Now(), n})
	}
}

// withdraw takes back an admission of n jobs of tenant that started
// nothing (its heavy slot was refused, shed.go), so it does not count
// against the tenant for admitWindow.
func (g *backlogGate) withdraw(tenant string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.tenants[tenant]
	if r == nil {
		return
	}
	for i := len(r.recent) - 1; i >= 0; i-- {
		if r.recent[i].n == n {
			r.recent = append(r.recent[:i], r.recent[i+1:]...)
			return
		}
	}
}

func (g *backlogGate) pruneTenants() {
	if len(g.tenants) < maxTenantReadings {
		return
	}
	for k, r := range g.tenants {
		if time.Since(r.used) > time.Minute && !r.refreshing {
			delete(g.tenants, k)
		}
	}
}

// countRunning counts tenant's running prewarm and purge workflows in
// visibility.
func (s *Service) countRunning(ctx context.Context, tenant string) (int64, error) {
	q := fmt.Sprintf("%s = '%s' AND %s IN ('%s', '%s') AND ExecutionStatus = 'Running'",
		workflows.AppKeyAttr.GetName(), escapeQuery(tenant), workflows.KindAttr.GetName(), workflows.KindPrewarm, workflows.KindPurge)
	resp, err := s.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: s.config.Namespace, Query: q})
	if err != nil {
		return 0, fmt.Errorf("count running jobs of %s: %w", tenant, err)
	}
	return resp.GetCount(), nil
}
