package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/workflows"
)

// MaxScheduleBody bounds a schedule's job: it is stored in the schedule
// and in every run's history.
const MaxScheduleBody = 512 << 10

// ScheduleRequest creates a recurring prewarm or purge.
type ScheduleRequest struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"` // prewarm or purge
	Cron     []string        `json:"cron,omitempty"`
	Interval string          `json:"interval,omitempty"` // Go duration, e.g. "1h"
	TimeZone string          `json:"timeZone,omitempty"`
	Overlap  string          `json:"overlap,omitempty"` // SKIP (default), BUFFER_ONE, BUFFER_ALL, CANCEL_OTHER, TERMINATE_OTHER, ALLOW_ALL
	Paused   bool            `json:"paused,omitempty"`
	Note     string          `json:"note,omitempty"`
	AppKey   string          `json:"appKey,omitempty"` // purge: whose domain
	Prewarm  json.RawMessage `json:"prewarm,omitempty"`
	Purge    json.RawMessage `json:"purge,omitempty"`
}

// ScheduleView is a schedule as the API shows it.
type ScheduleView struct {
	ID         string   `json:"id"`
	Kind       string   `json:"kind,omitempty"`
	Cron       []string `json:"cron,omitempty"`
	Interval   string   `json:"interval,omitempty"`
	TimeZone   string   `json:"timeZone,omitempty"`
	Paused     bool     `json:"paused"`
	Note       string   `json:"note,omitempty"`
	Runs       int64    `json:"runs"`
	NextRuns   []string `json:"nextRuns,omitempty"`
	RecentRuns []string `json:"recentRuns,omitempty"` // workflow ids of recent runs
	// SkippedOverlap counts firings skipped because the previous run's job
	// was still running (overlap SKIP).
	SkippedOverlap int64     `json:"skippedOverlap"`
	Created        time.Time `json:"created,omitempty"`
	// AppKey is whose domain the job touches ("" for a host served by the
	// default origin); CreatedBy is the Caller.KeyID that created it.
	AppKey    string `json:"appKey,omitempty"`
	CreatedBy string `json:"createdBy,omitempty"`
}

// Memo keys of a cdnflow schedule: who created it and whose domain its
// job touches, checked again by every action on it.
const (
	memoScheduleAppKey    = "appKey"
	memoScheduleCreatedBy = "createdBy"
)

var scheduleIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

var overlaps = map[string]enumspb.ScheduleOverlapPolicy{
	"":                enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	"SKIP":            enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	"BUFFER_ONE":      enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
	"BUFFER_ALL":      enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
	"CANCEL_OTHER":    enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER,
	"TERMINATE_OTHER": enumspb.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER,
	"ALLOW_ALL":       enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
}

// ErrExists means the id is taken.
var ErrExists = errors.New("already exists")

// CreateSchedule validates the job as the API would now and creates a
// Temporal Schedule that starts a ScheduledJobWorkflow at each fire. The
// caller needs schedule scope and the job's own (purge, or prewarm and
// purge with need_invalidate) on the appKey the job touches: runs have
// no caller, so this is where authority is checked; the creator is kept
// in the schedule's memo.
func (s *Service) CreateSchedule(ctx context.Context, req ScheduleRequest) (ScheduleView, error) {
	var v ScheduleView
	if !scheduleIDRe.MatchString(req.ID) {
		return v, invalid("id must be 1-63 lower-case letters, digits or '-'")
	}
	spec := client.ScheduleSpec{CronExpressions: req.Cron, TimeZoneName: req.TimeZone}
	if req.Interval != "" {
		d, err := time.ParseDuration(req.Interval)
		if err != nil || d < time.Minute {
			return v, invalid("interval must be a duration of at least 1m, such as \"30m\" or \"6h\"")
		}
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: d}}
	}
	if len(req.Cron) == 0 && req.Interval == "" {
		return v, invalid("give cron (a list of cron expressions) or interval")
	}
	if req.TimeZone != "" {
		if _, err := time.LoadLocation(req.TimeZone); err != nil {
			return v, invalid("timeZone %q is not an IANA time zone name", req.TimeZone)
		}
	}
	overlap, ok := overlaps[strings.ToUpper(req.Overlap)]
	if !ok {
		return v, invalid("overlap must be SKIP, BUFFER_ONE, BUFFER_ALL, CANCEL_OTHER, TERMINATE_OTHER or ALLOW_ALL")
	}
	job, appKey, err := s.scheduledJob(ctx, req)
	if err != nil {
		return v, err
	}
	if len(job.Body) > MaxScheduleBody {
		return v, invalid("the job body is %d bytes; a schedule keeps at most %d", len(job.Body), MaxScheduleBody)
	}
	_, err = s.temporal.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      workflows.ScheduleID(req.ID),
		Spec:    spec,
		Overlap: overlap,
		Paused:  req.Paused,
		Note:    req.Note,
		Memo:    map[string]any{memoScheduleAppKey: appKey, memoScheduleCreatedBy: CallerFrom(ctx).KeyID},
		Action: &client.ScheduleWorkflowAction{
			ID:        workflows.ScheduledPrefix + req.ID,
			Workflow:  workflows.ScheduledJobWorkflow,
			Args:      []any{job},
			TaskQueue: s.config.TaskQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.KindAttr.ValueSet(workflows.ScheduledPrefix + req.Kind),
			),
		},
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.KindAttr.ValueSet(req.Kind)),
	})
	var exists *serviceerror.AlreadyExists
	if errors.As(err, &exists) || errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return v, fmt.Errorf("schedule %s: %w", req.ID, ErrExists)
	}
	if err != nil {
		return v, fmt.Errorf("create schedule: %w", err)
	}
	return s.describeSchedule(ctx, req.ID)
}

// scheduledJob validates a schedule's job as the API would take it now,
// checks the caller's authority over the appKey it touches, and returns
// the job its runs submit and that appKey.
func (s *Service) scheduledJob(ctx context.Context, req ScheduleRequest) (activities.ScheduledJob, string, error) {
	job := activities.ScheduledJob{ScheduleID: req.ID, Kind: req.Kind, AppKey: req.AppKey}
	switch req.Kind {
	case workflows.KindPrewarm:
		var p PrewarmRequest
		if err := json.Unmarshal(req.Prewarm, &p); err != nil {
			return job, "", invalid("prewarm must be a Prewarm API body: %v", err)
		}
		_, target, err := s.checkPrewarm(ctx, p)
		if err != nil {
			return job, "", err
		}
		if err := authorize(ctx, VerbSchedule, target.AppKey); err != nil {
			return job, "", err
		}
		job.Body = req.Prewarm
		// Pinned: every run is checked against this appKey (schedule_run.go),
		// so a host that changes owner is never warmed or purged for the
		// schedule's creator.
		job.AppKey = target.AppKey
		return job, target.AppKey, authorizePrewarm(ctx, target.AppKey, p.NeedInvalidate)
	case workflows.KindPurge:
		var p PurgeRequest
		if err := json.Unmarshal(req.Purge, &p); err != nil {
			return job, "", invalid("purge must be an NHN purge body: %v", err)
		}
		if _, ok := s.config.AppKeys[req.AppKey]; !ok {
			return job, "", invalid("appKey %q is not configured", req.AppKey)
		}
		if err := authorize(ctx, VerbSchedule, req.AppKey); err != nil {
			return job, "", err
		}
		if err := authorize(ctx, VerbPurge, req.AppKey); err != nil {
			return job, "", err
		}
		if _, err := SplitPurgeList(strings.ToUpper(p.PurgeType), p.PurgeList, s.config.PurgeItemBatch, s.config.PurgeWildcardBatch); err != nil {
			return job, "", err
		}
		if _, err := s.DistributionByDomain(ctx, req.AppKey, strings.ToLower(p.Domain)); err != nil {
			return job, "", err
		}
		job.Body = req.Purge
		return job, req.AppKey, nil
	}
	return job, "", invalid("kind must be prewarm or purge")
}

// Schedule describes one schedule; the caller needs read scope on its
// appKey.
func (s *Service) Schedule(ctx context.Context, id string) (ScheduleView, error) {
	v, err := s.describeSchedule(ctx, id)
	if err != nil {
		return v, err
	}
	return v, authorize(ctx, VerbRead, v.AppKey)
}

// ScheduleAfterAction describes a schedule right after an action the
// caller was authorized for (ScheduleAction), without a read check: a
// schedule-only credential sees what it just changed.
func (s *Service) ScheduleAfterAction(ctx context.Context, id string) (ScheduleView, error) {
	return s.describeSchedule(ctx, id)
}

func (s *Service) describeSchedule(ctx context.Context, id string) (ScheduleView, error) {
	v := ScheduleView{ID: id}
	if !scheduleIDRe.MatchString(id) {
		return v, ErrNotFound
	}
	desc, err := s.temporal.ScheduleClient().GetHandle(ctx, workflows.ScheduleID(id)).Describe(ctx)
	if err != nil {
		if isNotFound(err) {
			return v, ErrNotFound
		}
		return v, fmt.Errorf("describe schedule %s: %w", id, err)
	}
	sc := desc.Schedule
	if a, ok := sc.Action.(*client.ScheduleWorkflowAction); ok {
		v.Kind = strings.TrimPrefix(workflowKind(a), workflows.ScheduledPrefix)
	}
	if sc.Spec != nil {
		v.Cron = sc.Spec.CronExpressions
		v.TimeZone = sc.Spec.TimeZoneName
		if len(sc.Spec.Intervals) > 0 {
			v.Interval = sc.Spec.Intervals[0].Every.String()
		}
	}
	if sc.State != nil {
		v.Paused = sc.State.Paused
		v.Note = sc.State.Note
	}
	v.Runs = int64(desc.Info.NumActions)
	for _, t := range desc.Info.NextActionTimes {
		v.NextRuns = append(v.NextRuns, t.UTC().Format(time.RFC3339))
	}
	for _, r := range desc.Info.RecentActions {
		if r.StartWorkflowResult != nil {
			v.RecentRuns = append(v.RecentRuns, r.StartWorkflowResult.WorkflowID)
		}
	}
	v.Created = desc.Info.CreatedAt
	v.SkippedOverlap = int64(desc.Info.NumActionsSkippedOverlap)
	for key, dst := range map[string]*string{memoScheduleAppKey: &v.AppKey, memoScheduleCreatedBy: &v.CreatedBy} {
		if p, ok := desc.Memo.GetFields()[key]; ok {
			_ = converter.GetDefaultDataConverter().FromPayload(p, dst) // a memo that does not decode shows empty
		}
	}
	return v, nil
}

func workflowKind(a *client.ScheduleWorkflowAction) string {
	if a.TypedSearchAttributes.Size() == 0 {
		return ""
	}
	if k, ok := a.TypedSearchAttributes.GetKeyword(workflows.KindAttr); ok {
		return k
	}
	return ""
}

// ListSchedules lists cdnflow's schedules.
func (s *Service) ListSchedules(ctx context.Context) ([]ScheduleView, error) {
	it, err := s.temporal.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	out := []ScheduleView{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		if !strings.HasPrefix(e.ID, workflows.ScheduleIDPrefix) {
			continue
		}
		// Schedules the caller may not read, and those deleted since the
		// listing, are left out; any other failure fails the listing
		// rather than answer a silently shortened one.
		v, err := s.Schedule(ctx, strings.TrimPrefix(e.ID, workflows.ScheduleIDPrefix))
		switch {
		case err == nil:
			out = append(out, v)
		case errors.Is(err, ErrForbidden), errors.Is(err, ErrNotFound):
		default:
			return nil, fmt.Errorf("list schedules: %w", err)
		}
	}
	return out, nil
}

// ScheduleAction pauses, unpauses, triggers or deletes a schedule; the
// caller needs schedule scope on its appKey. A trigger follows the
// schedule's overlap policy like a timed firing (SKIP: nothing starts
// while the last run's job is running).
func (s *Service) ScheduleAction(ctx context.Context, id, action string) error {
	v, err := s.describeSchedule(ctx, id)
	if err != nil {
		return err
	}
	if err := authorize(ctx, VerbSchedule, v.AppKey); err != nil {
		return err
	}
	h := s.temporal.ScheduleClient().GetHandle(ctx, workflows.ScheduleID(id))
	switch action {
	case "pause":
		err = h.Pause(ctx, client.SchedulePauseOptions{Note: "paused through the cdnflow API"})
	case "unpause":
		err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: "unpaused through the cdnflow API"})
	case "trigger":
		err = h.Trigger(ctx, client.ScheduleTriggerOptions{})
	case "delete":
		err = h.Delete(ctx)
	default:
		return invalid("unknown schedule action %q", action)
	}
	if err != nil && isNotFound(err) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("%s schedule %s: %w", action, id, err)
	}
	return nil
}
