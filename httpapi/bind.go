package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Body limits per route, in bytes, sized to the largest valid body of the
// route's fields (docs/nhn.md "Body limits", docs/prewarm.md "Limits";
// TestLargestValidBodiesFit builds each and checks it fits). A larger body
// is answered 413 (NHN: resultCode 10005) while it is read: from
// Content-Length before reading, else when the reader passes the limit,
// so no more than the limit is ever held.
const (
	// MaxPrewarmBody: 100,000 URLs (service.MaxPrewarmURLs) of 160 bytes
	// on average (a 100,000-URL list of 70-byte asset URLs is 7.3 MB).
	MaxPrewarmBody = 16 << 20
	// MaxPurgeBody: 20,000 purgeList entries (service.MaxPurgePaths) of
	// 200 bytes on average, or fewer up to 2,048 bytes each.
	MaxPurgeBody = 4 << 20
	// MaxDistributionsBody: 100 distributions (MaxDistributionsPerRequest)
	// with every NHN field at its maximum (10 origins with 8,192-character
	// originPaths each): 8.8 MB.
	MaxDistributionsBody = 12 << 20
	// MaxDistributionBody: one distribution (PUT, PATCH) at its maximum:
	// 90 KB.
	MaxDistributionBody = 256 << 10
	// MaxScheduleBody: a schedule's job (service.MaxScheduleBody, 512 KiB)
	// and its fields.
	MaxScheduleBody = 1 << 20
	// MaxChunkedBody bounds a body sent without Content-Length (chunked):
	// one of known length is read into one buffer of that size, one of
	// unknown length grows as it arrives, so it is held to less.
	MaxChunkedBody = 2 << 20
	// MaxSmallBody: every other route (edge checks, rollback, suspend,
	// resume: ids and a few fields).
	MaxSmallBody = 256 << 10
)

// bodyLimits are the routes (Echo route templates) with a limit other
// than MaxSmallBody.
var bodyLimits = map[string]int64{
	"POST /prewarm":                                   MaxPrewarmBody,
	"POST /v1.5/appKeys/:appKey/purges":               MaxPurgeBody,
	"POST /v1/releases":                               MaxPrewarmBody + MaxPurgeBody,
	"POST /v1.5/appKeys/:appKey/distributions":        MaxDistributionsBody,
	"PUT /v1.5/appKeys/:appKey/distributions":         MaxDistributionBody,
	"PATCH /v1.5/appKeys/:appKey/distributions":       MaxDistributionBody,
	"PATCH /v1/appKeys/:appKey/distributions/:domain": MaxDistributionBody,
	"POST /v1/schedules":                              MaxScheduleBody,
}

// BodyLimit is the body limit of a route: method and Echo route template
// ("POST /prewarm").
func BodyLimit(method, path string) int64 {
	if n, ok := bodyLimits[method+" "+path]; ok {
		return n
	}
	return MaxSmallBody
}

// limitBody refuses, before the handler runs, a body whose Content-Length
// is over the route's BodyLimit, and bounds the reading of any other body
// (chunked, or a route that reads it elsewhere) by it: a route never holds
// more of a body than its limit, whether it reads the body or not.
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		limit := BodyLimit(r.Method, c.Path())
		if r.ContentLength > limit {
			return errTooLarge(limit)
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		}
		return next(c)
	}
}

func errTooLarge(limit int64) *APIError {
	return &APIError{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
		Message: fmt.Sprintf("request body is larger than %d KiB, this route's limit", limit>>10)}
}

// bind decodes the request body, exactly one JSON value, into v; every
// route's body goes through it. expect describes the body for the
// messages ("JSON with url_list, ..."). Refused, as 400 (NHN
// 10001): an empty body, invalid JSON, a value of the wrong shape, and any
// data after the value other than white space. Refused as 413: a body over
// the route's BodyLimit.
func bind(c echo.Context, v any, expect string) error {
	return decodeBody(c, v, expect, false)
}

// bindOptional is bind for routes whose body may be absent: an empty body
// leaves v as it is.
func bindOptional(c echo.Context, v any, expect string) error {
	return decodeBody(c, v, expect, true)
}

func decodeBody(c echo.Context, v any, expect string, optional bool) error {
	r := c.Request()
	limit := BodyLimit(r.Method, c.Path())
	data, err := readBody(c, limit)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return nil
		}
		return badRequest("request body is empty; the body must be " + expect)
	}
	if err := json.Unmarshal(data, v); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) && strings.Contains(err.Error(), "after top-level value") {
			return badRequest("request body has data after the JSON value: send exactly one JSON object")
		}
		return badRequest("request body is not valid JSON: " + err.Error() + "; the body must be " + expect)
	}
	return nil
}

// readBody reads the request body, at most limit bytes (else errTooLarge):
// into one buffer of its Content-Length when the request gives one, else
// growing as it arrives, up to MaxChunkedBody. The JSON is then decoded
// from that buffer, so a body costs its size once, not again in a
// decoder's buffer.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, errTooLarge(limit)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	chunked := r.ContentLength < 0 && limit > MaxChunkedBody
	if chunked {
		limit = MaxChunkedBody
	}
	body := http.MaxBytesReader(c.Response(), r.Body, limit)
	var data []byte
	var err error
	if r.ContentLength >= 0 {
		data = make([]byte, r.ContentLength)
		_, err = io.ReadFull(body, data)
	} else {
		data, err = io.ReadAll(body)
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig) && chunked:
		e := errTooLarge(limit)
		e.Message += " for a body without Content-Length; send a larger one with Content-Length"
		return nil, e
	case errors.As(err, &tooBig):
		return nil, errTooLarge(limit)
	case err != nil:
		return nil, badRequest("request body could not be read: " + err.Error())
	}
	return data, nil
}

// metricMethod is a request method as a metric label: the methods of
// RFC 9110 §9 and PATCH, anything else "OTHER", so a caller's made-up
// methods never add label values. Paths are labelled by their route
// template (c.Path()), never the request's path.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// cut bounds a caller-supplied log field to n bytes.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
