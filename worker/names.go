package worker

import (
	"go.temporal.io/sdk/activity"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/payload"
)

// activityName registers an activity under the stable name workflows use,
// so renaming a Go method never breaks running histories.
func activityName(name string) activity.RegisterOptions {
	return activity.RegisterOptions{Name: name}
}

func (d Deps) edgeClient() *edge.Client {
	if d.Edge != nil {
		return d.Edge
	}
	return edge.NewClient(edge.Options{Timeout: d.Config.PrewarmAttemptTimeout})
}

func (d Deps) payloadStore() payload.Store {
	if d.Payloads != nil {
		return d.Payloads
	}
	return payload.FS{Dir: d.Config.PayloadDir()}
}
