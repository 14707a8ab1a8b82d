package vcl

// hdrStoredAge is kept on each cached object: its age when this edge
// stored it (Varnish beresp.age), which includes the origin's Age header.
// The connector strips every X-Cdnflow-* header of an origin's response,
// so no origin can set it; vcl_deliver removes it from answers.
const hdrStoredAge = "X-Cdnflow-Stored-Age"

// heldFor is the VCL expression the cache-only probe answers as the age of
// a cached copy: how long this edge has held it, obj.age minus its age
// when stored. Varnish counts obj.age from the origin's Date less its Age
// header (RFC 9111 section 4.2.3), so an origin answering "Age: 100000"
// would make a copy fetched a second ago look older than any purge
// (edge/probe.go, activities/purge.go verifyGone). An object stored
// without the header (by an older VCL) answers obj.age.
func heldFor() string {
	return `(obj.age - std.duration(obj.http.` + hdrStoredAge + ` + "s", 0s))`
}

// writeStoredAge stamps hdrStoredAge on every object fetched and hides it
// from clients. Varnish runs the bodies of a built-in sub defined more
// than once in the order written, so this vcl_backend_response must come
// before the one that may return early (writeBackendSide), and this
// vcl_deliver adds to the main one.
func (p *renderPlan) writeStoredAge(w *writer) {
	w.line("# Purge verification: the object's age when stored (origin Age")
	w.line("# included), so the cache-only probe answers how long this edge has")
	w.line("# held it, which no origin header can change.")
	w.open("sub vcl_backend_response")
	w.line("set beresp.http.%s = beresp.age;", hdrStoredAge)
	w.close()
	w.line("")
	w.open("sub vcl_deliver")
	w.line("unset resp.http.%s;", hdrStoredAge)
	w.close()
	w.line("")
}
