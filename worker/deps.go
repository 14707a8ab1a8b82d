package worker

import (
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/internal/payload"
)

func (d Deps) edgeClient() *edge.Client {
	if d.Edge != nil {
		return d.Edge
	}
	return edge.NewClient(d.Config.EdgeOptions())
}

func (d Deps) payloadStore() payload.Store {
	if d.Payloads != nil {
		return d.Payloads
	}
	return payload.Missing
}
