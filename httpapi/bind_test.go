package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cdnflow/cdnflow/internal/payload"

	"github.com/cdnflow/cdnflow/service"
)

// The one body decoder: exactly one JSON value, white space around it
// allowed, anything else after it refused, the size bounded.
func TestBindRefusesWhatIsNotOneJSONValue(t *testing.T) {
	e := echo.New()
	big := `{"a": "` + strings.Repeat("x", MaxSmallBody) + `"}`
	for name, tc := range map[string]struct {
		body     string
		optional bool
		status   int
		want     string
	}{
		"one object":        {body: `{"a": "b"}`},
		"white space after": {body: "{\"a\": \"b\"}\n\t "},
		"trailing object":   {body: `{"a": "b"} {"a": "c"}`, status: 400, want: "data after the JSON"},
		"trailing brace":    {body: `{"a": "b"}}`, status: 400, want: "data after the JSON"},
		"trailing word":     {body: `{"a": "b"} x`, status: 400, want: "data after the JSON"},
		"malformed":         {body: `{"a": `, status: 400, want: "not valid JSON: unexpected end of JSON input; the body must be JSON with a"},
		"wrong shape":       {body: `{"a": 1}`, status: 400, want: "not valid JSON"},
		"empty":             {body: ``, status: 400, want: "empty; the body must be JSON with a"},
		"empty optional":    {body: ``, optional: true},
		"too large":         {body: big, status: 413, want: "larger than"},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(tc.body))
			c := e.NewContext(req, httptest.NewRecorder())
			var v struct{ A string }
			err := decodeBody(c, &v, "JSON with a", tc.optional)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Message, tc.want) {
				t.Fatalf("= %v, want %d containing %q", err, tc.status, tc.want)
			}
		})
	}
}

// The one error table answers each service error in both envelopes.
func TestAnswerForServiceErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		err    error
		status int
		code   string
		nhn    int
		msg    string
	}{
		"validation":     {&service.ValidationError{Msg: "url_list is empty"}, 400, CodeInvalidRequest, NHNInvalidParameter, "url_list is empty"},
		"overloaded":     {fmt.Errorf("start: %w", service.ErrOverloaded), 429, CodeRateLimited, NHNRateLimited, "behind"},
		"no workers":     {service.ErrWorkersUnavailable, 503, CodeUnavailable, NHNTemporalUnavailble, "no worker"},
		"rate limited":   {fmt.Errorf("%w: one per 1s", service.ErrRateLimited), 429, CodeRateLimited, NHNRateLimited, "one per 1s"},
		"invalid state":  {fmt.Errorf("%w: suspended", service.ErrInvalidState), 409, CodeConflict, NHNInvalidState, "suspended"},
		"in progress":    {fmt.Errorf("%w: busy", service.ErrInProgress), 409, CodeConflict, NHNOperationInFlight, "busy"},
		"exists":         {fmt.Errorf("schedule a: %w", service.ErrExists), 409, CodeConflict, NHNInvalidParameter, "schedule a: already exists"},
		"unknown domain": {service.ErrUnknownDomain, 400, CodeInvalidRequest, NHNNotFound, "no distribution of this appKey"},
		"not found":      {about("prewarm request 7", service.ErrNotFound), 404, CodeNotFound, NHNNotFound, "no prewarm request 7"},
		"temporal nf":    {about("schedule s", serviceerror.NewNotFound("schedule not found")), 404, CodeNotFound, NHNNotFound, "no schedule s"},
		"temporal down":  {fmt.Errorf("start purge: %w", serviceerror.NewUnavailable("connection refused")), 503, CodeUnavailable, NHNTemporalUnavailble, "does not answer"},
		"db down (grpc)": {fmt.Errorf("start: %w", status.Error(codes.Unavailable, "CreateWorkflowExecution: dial tcp 127.0.0.1:15432: connect: connection refused")), 503, CodeUnavailable, NHNTemporalUnavailble, "its database"},
		"deadline":       {fmt.Errorf("start: %w", context.DeadlineExceeded), 503, CodeUnavailable, NHNTemporalUnavailble, "retry later"},
		"store down":     {fmt.Errorf("put list: %w", payload.ErrUnavailable), 503, CodeUnavailable, NHNTemporalUnavailble, "payload store"},
		"temporal other": {serviceerror.NewInternal("boom"), 500, CodeInternal, NHNInternalError, "internal error"},
		"bad query":      {badRequest("page must be"), 400, CodeInvalidRequest, NHNInvalidParameter, "page must be"},
		"echo 405":       {echo.ErrMethodNotAllowed, 405, CodeMethodNotAllowed, NHNInvalidParameter, "Method Not Allowed"},
		"too large":      {errTooLarge(MaxSmallBody), 413, CodeTooLarge, NHNPayloadTooLarge, "larger than"},
		"idempotency":    {fmt.Errorf("%w (first: x)", service.ErrIdempotencyConflict), 422, CodeIdempotencyConflict, NHNInvalidParameter, "another request body"},
		"limit":          {&service.LimitError{Kind: service.ErrRateLimited, Policy: "purge-items", Quota: 1, Window: time.Second, RetryAfter: time.Second, Msg: "rate limited: one per 1s"}, 429, CodeRateLimited, NHNRateLimited, "one per 1s"},
		"unknown":        {errors.New("disk on fire"), 500, CodeInternal, NHNInternalError, "internal error"},
	} {
		a := answerFor(tc.err)
		if a.status != tc.status || a.code != tc.code || a.nhn != tc.nhn || !strings.Contains(a.msg, tc.msg) {
			t.Errorf("%s: = %+v, want %d %s %d containing %q", name, a, tc.status, tc.code, tc.nhn, tc.msg)
		}
	}
}

// The largest valid body of each route fits its limit: the figures the
// limits are sized by (docs/nhn.md "Body limits", docs/prewarm.md
// "Limits").
func TestLargestValidBodiesFit(t *testing.T) {
	size := func(v any) int64 {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return int64(len(b))
	}
	// 20,000 purgeList entries of 200 bytes.
	entries := make([]string, service.MaxPurgePaths)
	for i := range entries {
		entries[i] = "/" + strings.Repeat("p", 199)
	}
	purge := size(map[string]any{"domain": strings.Repeat("d", 63) + ".example.com", "purgeType": "ITEM", "purgeList": strings.Join(entries, "\n")})
	// 100,000 URLs of 160 bytes.
	urls := make([]string, service.MaxPrewarmURLs)
	for i := range urls {
		urls[i] = "https://www.example.com/" + strings.Repeat("u", 160-24)
	}
	prewarm := size(map[string]any{"url_list": urls, "cf_domain": "www.example.com", "target_type": "region", "region": "all", "timeout": 3600})
	// One distribution with every NHN field at its maximum (spec tables).
	origins := make([]map[string]any, 10)
	for i := range origins {
		origins[i] = map[string]any{"origin": strings.Repeat("o", 255), "port": 65535, "httpPort": 65535, "httpsPort": 65535,
			"originPath": "/" + strings.Repeat("p", 8191)}
	}
	dist := map[string]any{"region": "GLOBAL", "description": strings.Repeat("x", 255), "domainAlias": strings.Repeat("a", 255),
		"maxAge": 2147483647, "referrerType": "BLACKLIST", "referrers": strings.Repeat("r", 1024), "useOrigin": "Y",
		"useOriginHttpProtocolDowngrade": false, "forwardHostHeader": "ORIGIN_HOSTNAME", "useOriginCacheControl": false,
		"origins": origins, "callback": map[string]any{"httpMethod": "POST", "url": "https://" + strings.Repeat("c", 1016)}}
	list := make([]map[string]any, service.MaxDistributionsPerRequest)
	for i := range list {
		list[i] = dist
	}
	for name, tc := range map[string]struct{ got, limit int64 }{
		"purge (20,000 × 200 B)":       {purge, MaxPurgeBody},
		"prewarm (100,000 × 160 B)":    {prewarm, MaxPrewarmBody},
		"one distribution at its max":  {size(dist), MaxDistributionBody},
		"100 distributions at the max": {size(map[string]any{"distributions": list}), MaxDistributionsBody},
	} {
		t.Logf("%s: %d bytes, limit %d", name, tc.got, tc.limit)
		if tc.got > tc.limit {
			t.Errorf("%s is %d bytes; its route's limit is %d", name, tc.got, tc.limit)
		}
	}
	if MaxPrewarmBody >= 32<<20 || MaxDistributionsBody >= 32<<20 || MaxPurgeBody >= 32<<20 {
		t.Fatal("a route accepts a 32 MiB body")
	}
}

// Caller-supplied values never become label values or unbounded log
// fields: a made-up method is "OTHER", a long forwarded address is cut.
func TestCallerValuesBounded(t *testing.T) {
	if got := metricMethod("X" + strings.Repeat("Y", 1000)); got != "OTHER" {
		t.Fatalf("made-up method labelled %q", got)
	}
	if got := metricMethod(http.MethodPatch); got != http.MethodPatch {
		t.Fatalf("PATCH labelled %q", got)
	}
	if got := cut(strings.Repeat("1", 10_000), 64); len(got) > 64+len("…") {
		t.Fatalf("cut to %d bytes", len(got))
	}
}
