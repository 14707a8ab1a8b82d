package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/workflows"
)

// purgeLimit names the NHN rate limit a purge request falls under and its
// interval: ITEM, WILDCARD and TAG purges share one per appKey
// (--purge-item-interval, 1 s), ALL purges have one per appKey and domain
// (--purge-all-interval, 5 min). The NHN v1.5 guide (/work/shared/specs/
// nhn-cdn-api-v1.5.md, "キャッシュ再配布(Purge)", notes under the response)
// says the purge API has a usage limit policy and refers to the console
// guide's "キャッシュ再配布使用量制限"; these intervals are cdnflow's reading of
// it (docs/nhn.md).
func (s *Service) purgeLimit(purgeType, domain string) (scope string, every time.Duration) {
	if purgeType == activities.PurgeAll {
		return "all/" + domain, s.config.PurgeAllInterval
	}
	return "items", s.config.PurgeItemInterval
}

// purgeHolds is what this process knows of the durable purge limits, so
// that a refusal is answered without a round trip to Temporal: until maps
// a limit key (appKey/scope) to the local time before which the counter
// refuses it (learnt from an admission, or from a refusal's remaining
// time), inFlight the keys whose admission is being asked right now.
// Guarded by backlogGate.mu. Knowing less than the counter is safe (the
// request asks it); the local hold is never shorter than the durable one
// (it starts when the answer arrives).
type purgeHolds struct {
	until    map[string]time.Time
	inFlight map[string]bool
	// busyUntil: the counter did not answer in time lately; until then
	// one request at a time (probe, its limit key) asks it, the others
	// are refused at once, so an overloaded counter costs one slow answer
	// per round, not one per limit key.
	busyUntil time.Time
	probe     string
}

// counterAnswer is what the counter did with an admission: answered,
// did not answer in time (overloaded), or another failure.
type counterAnswer int

const (
	counterOther counterAnswer = iota
	counterAnswered
	counterTimedOut
)

// counterBusyFor is how long the counter counts as busy after it did not
// answer in time.
const counterBusyFor = 10 * time.Second

// maxPurgeHolds bounds the holds remembered: past it, expired ones are
// dropped, and when none is expired new ones are not remembered (those
// requests then ask the counter).
const maxPurgeHolds = 100_000

// claimPurgeLimit refuses at once, with a *LimitError, a request whose
// limit key this process knows is held or is being admitted right now;
// otherwise it marks the key in flight, and the caller settles it with
// settlePurgeLimit once the counter answered.
func (s *Service) claimPurgeLimit(key, scope string, every time.Duration) error {
	if every <= 0 {
		return nil
	}
	g := s.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	h := &g.holds
	if h.until == nil {
		h.until, h.inFlight = map[string]time.Time{}, map[string]bool{}
	}
	now := time.Now()
	if until, ok := h.until[key]; ok && now.Before(until) {
		return purgeRefusal(scope, every, until.Sub(now))
	}
	if h.inFlight[key] {
		// Another request of this limit is being admitted: it takes the
		// token, or the token is held already.
		return purgeRefusal(scope, every, every)
	}
	if now.Before(h.busyUntil) {
		if h.probe != "" {
			return &LimitError{Kind: ErrRateLimited, Policy: "backlog", Quota: 1, Window: counterBackoff, RetryAfter: counterBackoff,
				Msg: fmt.Sprintf("%v: purge capacity is exhausted right now; retry in a few seconds", ErrRateLimited)}
		}
		h.probe = key
	}
	h.inFlight[key] = true
	return nil
}

// settlePurgeLimit ends key's admission: held for heldFor from now when
// the counter admitted the request (every) or refused it (its remaining
// time); heldFor 0 remembers nothing. answer marks the counter busy (it
// did not answer in time) or not busy (it answered).
func (s *Service) settlePurgeLimit(key string, heldFor time.Duration, answer counterAnswer) {
	g := s.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	h := &g.holds
	delete(h.inFlight, key)
	if h.probe == key {
		h.probe = ""
	}
	now := time.Now()
	switch answer {
	case counterAnswered:
		h.busyUntil = time.Time{}
	case counterTimedOut:
		h.busyUntil = now.Add(counterBusyFor)
	}
	if heldFor <= 0 {
		return
	}
	if len(h.until) >= maxPurgeHolds {
		for k, u := range h.until {
			if !now.Before(u) {
				delete(h.until, k)
			}
		}
		if len(h.until) >= maxPurgeHolds {
			return
		}
	}
	h.until[key] = now.Add(heldFor)
}

// purgeRefusal is the refusal of a purge request by its NHN limit; the
// message is the counter's own.
func purgeRefusal(scope string, every, retryAfter time.Duration) *LimitError {
	policy := "purge-items"
	if scope != "items" {
		policy = "purge-all"
	}
	return &LimitError{Kind: ErrRateLimited, Policy: policy, Quota: 1, Window: every, RetryAfter: retryAfter,
		Msg: fmt.Sprintf("%v: %s", ErrRateLimited, workflows.PurgeLimitMessage(scope, every))}
}

// counterBackoff is the Retry-After of a refusal because the counter is
// busy.
const counterBackoff = 2 * time.Second

// takePurgeToken admits one purge request of appKey under scope, at most
// one per every across every API process, and reserves its n seqs — one
// Update (workflows.UpdateAdmitPurge) of the purge counter, started with
// it when new: one round trip for the rate token and the seqs together.
// The rule is "no two admitted requests of one scope
// closer than every", measured by the Temporal server (the counter's
// workflow clock), not by the API processes' clocks; a refused request
// takes nothing, so polling does not extend the wait. every <= 0 admits
// everything. It answers the first of the n seqs. The caller has claimed
// the limit key (claimPurgeLimit); this settles it.
//
// Errors: *LimitError (ErrRateLimited, naming the scope and interval) for
// a refusal; other errors are Temporal's, wrapped.
func (s *Service) takePurgeToken(ctx context.Context, appKey, scope string, every time.Duration, n int) (int64, error) {
	key := appKey + "/" + scope
	first, err := s.updateCounter(ctx, "purge", workflows.UpdateAdmitPurge,
		workflows.AdmitPurge{Key: key, Scope: scope, Every: every, N: n})
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == workflows.ErrPurgeRateLimited {
		var remainingMS int64
		if appErr.HasDetails() {
			_ = appErr.Details(&remainingMS)
		}
		remaining := time.Duration(remainingMS) * time.Millisecond
		if remaining <= 0 || remaining > every {
			remaining = every
		}
		s.settlePurgeLimit(key, remaining, counterAnswered)
		return 0, purgeRefusal(scope, every, remaining)
	}
	if err != nil {
		// A counter too busy to answer in time: for counterBusyFor one
		// request at a time asks it and the others are refused at once
		// (StartPurge answers this one as rate-limited, Retry-After
		// counterBackoff), instead of each waiting out seqTimeout.
		answer := counterOther
		if overloaded(err) && ctx.Err() != context.Canceled {
			answer = counterTimedOut
		}
		s.settlePurgeLimit(key, 0, answer)
		return 0, fmt.Errorf("admit purge (%s) and reserve %d seqs: %w", scope, n, err)
	}
	s.settlePurgeLimit(key, every, counterAnswered)
	return first, nil
}
