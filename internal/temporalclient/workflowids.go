package temporalclient

import (
	"context"
	"sync"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
)

// WorkflowIDs collects the ids of the workflows one request started or
// updated through the client: the job ids (prewarm-…, purge-…-seq,
// distribution/…) and the entities they touched (sequence/…). The API's request log prints them next to the trace id.
type WorkflowIDs struct {
	mu  sync.Mutex
	ids []string
}

type workflowIDsKey struct{}

// WithWorkflowIDs returns ctx with an empty collector the client fills.
func WithWorkflowIDs(ctx context.Context) (context.Context, *WorkflowIDs) {
	w := &WorkflowIDs{}
	return context.WithValue(ctx, workflowIDsKey{}, w), w
}

// IDs answers the ids collected so far, in call order, without repeats.
func (w *WorkflowIDs) IDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.ids...)
}

func addWorkflowID(ctx context.Context, id string) {
	w, _ := ctx.Value(workflowIDsKey{}).(*WorkflowIDs)
	if w == nil || id == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, have := range w.ids {
		if have == id {
			return
		}
	}
	w.ids = append(w.ids, id)
}

// workflowIDsInterceptor records into the context's WorkflowIDs every
// workflow started, signalled with start or updated successfully.
type workflowIDsInterceptor struct {
	interceptor.ClientInterceptorBase
}

func (*workflowIDsInterceptor) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &workflowIDsOutbound{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}}
}

type workflowIDsOutbound struct {
	interceptor.ClientOutboundInterceptorBase
}

func (o *workflowIDsOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	run, err := o.Next.ExecuteWorkflow(ctx, in)
	if err == nil {
		addWorkflowID(ctx, run.GetID())
	}
	return run, err
}

func (o *workflowIDsOutbound) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	run, err := o.Next.SignalWithStartWorkflow(ctx, in)
	if err == nil {
		addWorkflowID(ctx, run.GetID())
	}
	return run, err
}

func (o *workflowIDsOutbound) UpdateWorkflow(ctx context.Context, in *interceptor.ClientUpdateWorkflowInput) (client.WorkflowUpdateHandle, error) {
	h, err := o.Next.UpdateWorkflow(ctx, in)
	if err == nil {
		addWorkflowID(ctx, in.WorkflowID)
	}
	return h, err
}

func (o *workflowIDsOutbound) UpdateWithStartWorkflow(ctx context.Context, in *interceptor.ClientUpdateWithStartWorkflowInput) (client.WorkflowUpdateHandle, error) {
	h, err := o.Next.UpdateWithStartWorkflow(ctx, in)
	if err == nil && in.UpdateOptions != nil {
		addWorkflowID(ctx, in.UpdateOptions.WorkflowID)
	}
	return h, err
}
