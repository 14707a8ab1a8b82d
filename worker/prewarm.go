package worker

import sdkworker "go.temporal.io/sdk/worker"

func registerPrewarm(r sdkworker.Registry, d Deps) error {
	return nil
}
