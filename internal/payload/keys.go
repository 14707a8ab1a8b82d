package payload

import "strconv"

// Keys of the payloads one layer writes and another reads; both build them
// here.

// PrewarmURLsKey is where a prewarm job's URL list is stored: a JSON array
// of the normalized URLs, in url_list order. The API writes it once; the
// batch activities and the status views read it.
func PrewarmURLsKey(requestID string) string { return "prewarm/" + requestID + "/urls.json" }

// PrewarmDetailKey is where one chunk's per-pair outcomes are stored: a
// JSON array of activities.PairDetail, one per URL of the chunk on edgeID.
// The batch activity writes it; the per-pair view of the API reads it.
// jobID is the job's workflow id.
func PrewarmDetailKey(jobID, edgeID string, chunk int) string {
	return "prewarm/" + jobID + "/edges/" + edgeID + "/" + strconv.Itoa(chunk) + ".json"
}
