package workflows

import "time"

// DefaultHeartbeatTimeout is used by inputs that carry no heartbeat
// timeout (those started before it was configurable, and tests).
const DefaultHeartbeatTimeout = 30 * time.Second

// heartbeatOrDefault bounds how long a killed worker's activity stays
// assigned to it before the server retries it elsewhere.
func heartbeatOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultHeartbeatTimeout
	}
	return d
}
