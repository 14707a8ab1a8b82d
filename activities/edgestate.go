package activities

import (
	"time"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// GenerationSkew is how far ahead of this worker's clock a generation's
// creation time may be and still count as written by a control plane
// (clocks of workers differ); beyond it the entry is drift, whatever its
// generation says.
const GenerationSkew = 5 * time.Minute

// AheadOfClock reports whether g was created after now plus
// GenerationSkew: no control plane wrote it (a planted or corrupt entry).
func AheadOfClock(g connector.Generation, now time.Time) bool {
	return g.Created > now.Add(GenerationSkew).UnixMilli()
}
