package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ErrPurgeRateLimited is the ApplicationError type of an UpdateAdmitPurge
// refused by its rate limit; its message names the scope and interval.
const ErrPurgeRateLimited = "PurgeRateLimited"

// AdmitPurge asks the purge counter (SequenceWorkflow "purge") to admit
// one purge request: at most one per Every for the limit Key (appKey and
// NHN limit scope; Every <= 0: no limit), and N consecutive seqs.
type AdmitPurge struct {
	Key   string        `json:"key"`
	Scope string        `json:"scope"`
	Every time.Duration `json:"every"`
	N     int           `json:"n"`
}

// PurgeLimitMessage is the message of a refusal by the limit of scope
// ("items" or "all/<domain>"), one request per every.
func PurgeLimitMessage(scope string, every time.Duration) string {
	return fmt.Sprintf("purges of this appKey (%s) are limited to one per %s", scope, every)
}

// admitHeld refuses a when its limit key was admitted less than a.Every
// ago by the counter's clock (workflow.Now: the Temporal server's time of
// the workflow task), with an ErrPurgeRateLimited ApplicationError whose
// details are the milliseconds (int64) until the key is free again. It
// runs as the update's validator: a refusal leaves no history event.
func admitHeld(ctx workflow.Context, st *SequenceState, a AdmitPurge) error {
	if a.N < 1 || a.N > MaxReserveSeqs {
		return fmt.Errorf("reserve %d seqs: must be 1 to %d", a.N, MaxReserveSeqs)
	}
	if a.Every <= 0 {
		return nil
	}
	now := workflow.Now(ctx).UnixMilli()
	if until, ok := st.Held[a.Key]; ok && now < until {
		return temporal.NewApplicationError(PurgeLimitMessage(a.Scope, a.Every), ErrPurgeRateLimited, until-now)
	}
	return nil
}

// admitPurge takes a's limit (held until now+Every; expired holds are
// dropped, so the state stays as small as the limits in force) and
// reserves a.N seqs, answering the first.
func admitPurge(ctx workflow.Context, st *SequenceState, a AdmitPurge) (int64, error) {
	if err := admitHeld(ctx, st, a); err != nil {
		return 0, err
	}
	if a.Every > 0 {
		now := workflow.Now(ctx).UnixMilli()
		for _, k := range workflow.DeterministicKeys(st.Held) {
			if st.Held[k] <= now {
				delete(st.Held, k)
			}
		}
		if st.Held == nil {
			st.Held = map[string]int64{}
		}
		st.Held[a.Key] = now + a.Every.Milliseconds()
	}
	first := st.Last + 1
	st.Last += int64(a.N)
	return first, nil
}
