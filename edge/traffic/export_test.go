package traffic

import "time"

// SetClock makes a read its time from now (before any use of a).
func SetClock(a *Aggregator, now func() time.Time) { a.now = now }
