package workflows

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

func tokenRec(i int, expires time.Time) TokenRecord {
	return TokenRecord{ID: fmt.Sprintf("tok_%016x", i), Hash: strings.Repeat("a", 64), Verbs: []string{"read"}, AllAppKeys: true, Expires: expires}
}

// The table refuses a create when it holds MaxTokens live tokens, drops
// expired ones on a change (which makes room), refuses a revoke of an
// unknown id and a taken id without a history event, and continues as new
// after tokenChangesPerRun changes with the table carried over.
func TestTokensWorkflowBoundsAndRevokes(t *testing.T) {
	defer func(n int) { tokenChangesPerRun = n }(tokenChangesPerRun)
	tokenChangesPerRun = 3
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	now := env.Now()
	var full TokenTable
	for i := range MaxTokens {
		full.Tokens = append(full.Tokens, tokenRec(i, now.Add(time.Hour)))
	}
	var errs []error
	update := func(at time.Duration, name string, arg any) {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
				OnReject:   func(err error) { errs = append(errs, err) },
				OnAccept:   func() {},
				OnComplete: func(_ interface{}, err error) { errs = append(errs, err) },
			}, arg)
		}, at)
	}
	update(time.Millisecond, UpdateTokenCreate, tokenRec(MaxTokens, now.Add(time.Hour)))       // full
	update(2*time.Millisecond, UpdateTokenRevoke, "tok_ffffffffffffffff")                      // unknown
	update(3*time.Millisecond, UpdateTokenCreate, tokenRec(0, now.Add(time.Hour)))             // taken
	update(4*time.Millisecond, UpdateTokenRevoke, tokenRec(1, time.Time{}).ID)                 // 1st change
	update(5*time.Millisecond, UpdateTokenCreate, tokenRec(MaxTokens+1, now.Add(time.Hour)))   // 2nd
	update(6*time.Millisecond, UpdateTokenCreate, tokenRec(MaxTokens+2, now.Add(time.Minute))) // full again
	update(7*time.Millisecond, UpdateTokenRevoke, tokenRec(2, time.Time{}).ID)                 // 3rd: CAN
	env.ExecuteWorkflow(TokensWorkflow, full)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new after %d changes, got %v", tokenChangesPerRun, err)
	}
	wantTypes := []string{ErrTokenTableFull, ErrUnknownToken, "taken", "", "", ErrTokenTableFull, ""}
	if len(errs) != len(wantTypes) {
		t.Fatalf("update results %v", errs)
	}
	for i, want := range wantTypes {
		var appErr *temporal.ApplicationError
		switch {
		case want == "" && errs[i] != nil:
			t.Errorf("update %d: %v, want success", i, errs[i])
		case want == "taken" && (errs[i] == nil || !strings.Contains(errs[i].Error(), "taken")):
			t.Errorf("update %d: %v, want a taken id", i, errs[i])
		case want != "" && want != "taken" && (!errors.As(errs[i], &appErr) || appErr.Type() != want):
			t.Errorf("update %d: %v, want %s", i, errs[i], want)
		}
	}
	var next TokenTable
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if len(next.Tokens) != MaxTokens-1 {
		t.Fatalf("carried table has %d tokens, want %d", len(next.Tokens), MaxTokens-1)
	}
}
