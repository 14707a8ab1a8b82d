package workflows

import "go.temporal.io/sdk/workflow"

// KindPurgeLimit is the KindAttr of a purge rate token
// (PurgeLimitWorkflow): not a job, and never listed as one.
const KindPurgeLimit = "purgelimit"

// PurgeLimitWorkflowID is the id of the rate token of one purge limit
// scope: "items" (ITEM, WILDCARD and TAG purges of the appKey) or
// "all/<domain>" (ALL purges of one domain).
func PurgeLimitWorkflowID(appKey, scope string) string {
	return "purge-limit/" + appKey + "/" + scope
}

// PurgeLimitWorkflow is a purge rate token: it was started with a start
// delay of the limit's interval and does nothing when it runs, so it is
// open for at least that interval; while one was open every other start
// with its id (PurgeLimitWorkflowID, conflict policy FAIL) failed, which was
// the refusal. Since issue 19 the API takes the limit with the seqs in one
// update of the purge counter (UpdateAdmitPurge) and starts no token; the
// workflow stays registered so tokens started before still run and their
// histories replay.
func PurgeLimitWorkflow(ctx workflow.Context) error { return nil }
