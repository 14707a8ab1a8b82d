package workflows

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Names of the token table (defined here, beside the workflow, like
// names.go's): the one TokensWorkflow of a namespace holds every API
// token, hashed.
const (
	// TokensWorkflowID is the id of the namespace's TokensWorkflow.
	TokensWorkflowID = "cdnflow-tokens"
	// UpdateTokenCreate takes a TokenRecord and adds it.
	UpdateTokenCreate = "token-create"
	// UpdateTokenRevoke takes a token id and removes it; it answers
	// ErrUnknownToken when no token has that id.
	UpdateTokenRevoke = "token-revoke"
	// QueryTokens answers the TokenTable.
	QueryTokens = "tokens"
	// MemoTokens is the memo key of the table ([]TokenRecord), upserted
	// after every change and read by describing the workflow, so an API
	// authenticates without a worker.
	MemoTokens = "tokens"
	// ErrUnknownToken is the ApplicationError type of a revoke of an id
	// that is not in the table.
	ErrUnknownToken = "UnknownToken"
	// ErrTokenTableFull is the ApplicationError type of a create refused
	// because the table holds MaxTokens live tokens.
	ErrTokenTableFull = "TokenTableFull"
)

// MaxTokens bounds the table: its memo is read by every API every few
// seconds and written to history on every change (1,000 records are about
// 300 KB).
const MaxTokens = 1000

// TokenRecord is one API token as stored: never its secret, only the
// SHA-256 of it (hex). Verbs and AppKeys are its scope; AllAppKeys
// ("*") covers every appKey, present and future.
type TokenRecord struct {
	ID         string    `json:"id"`
	Hash       string    `json:"hash"`
	Name       string    `json:"name,omitempty"`
	Verbs      []string  `json:"verbs"`
	AppKeys    []string  `json:"appKeys,omitempty"`
	AllAppKeys bool      `json:"allAppKeys,omitempty"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	// CreatedBy is the Caller.KeyID that created it.
	CreatedBy string `json:"createdBy,omitempty"`
}

// TokenTable is the TokensWorkflow's state, carried across
// continue-as-new.
type TokenTable struct {
	Tokens []TokenRecord `json:"tokens"`
}

var tokenIDRe = regexp.MustCompile(`^tok_[0-9a-f]{16}$`)

// ValidTokenID reports whether id has the shape of a token id
// ("tok_" and 16 lower-case hex digits).
func ValidTokenID(id string) bool { return tokenIDRe.MatchString(id) }

// tokenChangesPerRun bounds a run's history: each change upserts the
// whole table into the memo.
var tokenChangesPerRun = 100

// TokensWorkflow holds the namespace's API tokens: UpdateTokenCreate
// adds one (refused when MaxTokens live ones exist or the id is taken),
// UpdateTokenRevoke removes one; expired tokens are dropped on every
// change. After each change the table is the memo MemoTokens. It
// continues as new every tokenChangesPerRun changes.
func TokensWorkflow(ctx workflow.Context, t TokenTable) error {
	changes := 0
	publish := func(ctx workflow.Context) error {
		changes++
		return workflow.UpsertMemo(ctx, map[string]any{MemoTokens: t.Tokens})
	}
	hasID := func(id string) func(TokenRecord) bool { return func(r TokenRecord) bool { return r.ID == id } }
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateTokenCreate, func(ctx workflow.Context, r TokenRecord) error {
		t.Tokens = liveTokens(t.Tokens, workflow.Now(ctx))
		if len(t.Tokens) >= MaxTokens {
			return temporal.NewApplicationError(fmt.Sprintf("the token table holds %d tokens, its limit; revoke some first", MaxTokens), ErrTokenTableFull)
		}
		t.Tokens = append(t.Tokens, r)
		return publish(ctx)
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, r TokenRecord) error {
		if !ValidTokenID(r.ID) || len(r.Hash) != 64 || len(r.Verbs) == 0 {
			return fmt.Errorf("token record %q: needs an id tok_<16 hex>, a SHA-256 hex hash and verbs", r.ID)
		}
		if slices.ContainsFunc(t.Tokens, hasID(r.ID)) {
			return fmt.Errorf("token id %s is taken", r.ID)
		}
		return nil
	}})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateTokenRevoke, func(ctx workflow.Context, id string) error {
		t.Tokens = slices.DeleteFunc(liveTokens(t.Tokens, workflow.Now(ctx)), hasID(id))
		return publish(ctx)
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, id string) error {
		// A refusal is the validator's: it leaves no event in the history.
		if !slices.ContainsFunc(t.Tokens, hasID(id)) {
			return temporal.NewApplicationError("no token "+id, ErrUnknownToken)
		}
		return nil
	}})
	if err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QueryTokens, func() (TokenTable, error) { return t, nil }); err != nil {
		return err
	}
	err = workflow.Await(ctx, func() bool {
		return changes >= tokenChangesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	})
	if err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, TokensWorkflow, t)
}

// liveTokens drops the tokens expired at now (a copy).
func liveTokens(ts []TokenRecord, now time.Time) []TokenRecord {
	out := make([]TokenRecord, 0, len(ts))
	for _, r := range ts {
		if r.Expires.After(now) {
			out = append(out, r)
		}
	}
	return out
}
