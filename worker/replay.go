package worker

import (
	"github.com/nexus-rpc/sdk-go/nexus"
	"go.temporal.io/sdk/activity"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// NewReplayer returns a WorkflowReplayer with every workflow that Register
// puts on a worker, so replay tests cover new workflows without edits.
func NewReplayer() (sdkworker.WorkflowReplayer, error) {
	r := sdkworker.NewWorkflowReplayer()
	if err := Register(replayRegistry{r}, Deps{}); err != nil {
		return nil, err
	}
	return r, nil
}

// replayRegistry forwards workflow registrations to a replayer and drops
// activities, which replay never runs.
type replayRegistry struct{ r sdkworker.WorkflowReplayer }

func (rr replayRegistry) RegisterWorkflow(w interface{}) { rr.r.RegisterWorkflow(w) }
func (rr replayRegistry) RegisterWorkflowWithOptions(w interface{}, o workflow.RegisterOptions) {
	rr.r.RegisterWorkflowWithOptions(w, o)
}
func (rr replayRegistry) RegisterDynamicWorkflow(w interface{}, o workflow.DynamicRegisterOptions) {
	rr.r.RegisterDynamicWorkflow(w, o)
}
func (replayRegistry) RegisterActivity(interface{})                                         {}
func (replayRegistry) RegisterActivityWithOptions(interface{}, activity.RegisterOptions)    {}
func (replayRegistry) RegisterDynamicActivity(interface{}, activity.DynamicRegisterOptions) {}
func (replayRegistry) RegisterNexusService(*nexus.Service)                                  {}
