package worker

import "go.temporal.io/sdk/activity"

// activityName registers an activity under the stable name workflows use,
// so renaming a Go method never breaks running histories.
func activityName(name string) activity.RegisterOptions {
	return activity.RegisterOptions{Name: name}
}
