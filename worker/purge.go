package worker

import sdkworker "go.temporal.io/sdk/worker"

func registerPurge(r sdkworker.Registry, d Deps) error {
	return nil
}
