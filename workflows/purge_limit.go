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

// PurgeLimitWorkflow is a purge rate token: it is started with a start
// delay of the limit's interval and does nothing when it runs, so it is
// open for at least that interval. The API starts one per admitted purge
// request with id PurgeLimitWorkflowID and conflict policy FAIL; while one
// is open every other start with that id fails, which is the refusal.
// Temporal decides between concurrent starts, so the limit holds across
// any number of API processes (service/purge_limit.go).
func PurgeLimitWorkflow(ctx workflow.Context) error { return nil }
