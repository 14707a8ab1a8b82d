package worker

import sdkworker "go.temporal.io/sdk/worker"

func registerDistributions(r sdkworker.Registry, d Deps) error {
	return nil
}
