package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/service"
)

// ErrorBody is the one error shape of every non-/v1.5 route:
//
//	{"code": "InvalidRequest", "message": "url_list must not be empty", "requestId": "..."}
//
// /v1.5 routes answer NHN's envelope instead (NHNResponse, HTTP 200).
type ErrorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"requestId,omitempty"`
}

// APIError is an error a handler or middleware makes about the request
// itself (bad query parameter, missing key, body too large). Status picks
// both envelopes' codes through statusAnswers.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Error codes of ErrorBody.
const (
	CodeInvalidRequest   = "InvalidRequest"
	CodeUnauthorized     = "Unauthorized"
	CodeNotFound         = "NotFound"
	CodeConflict         = "Conflict"
	CodePrecondition     = "PreconditionFailed"
	CodeTooLarge         = "PayloadTooLarge"
	CodeUnavailable      = "ServiceUnavailable"
	CodeRateLimited      = "TooManyRequests"
	CodeMethodNotAllowed = "MethodNotAllowed"
	CodeInternal         = "InternalError"
	// CodeIdempotencyConflict: an Idempotency-Key reused with another body
	// (422).
	CodeIdempotencyConflict = "IdempotencyKeyReused"
)

func badRequest(msg string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: msg}
}

// answer is how one error is rendered: status and code of the JSON
// envelope, resultCode of the NHN envelope (always HTTP 200), the message
// both carry, and a Retry-After (seconds) when a retry will help.
type answer struct {
	status     int
	code       string
	nhn        int
	msg        string
	retryAfter string
	// limit, for a refusal by a limit: the RateLimit header fields.
	limit *service.LimitError
}

// statusAnswers gives an HTTP status its ErrorBody code and NHN resultCode.
// Statuses not listed answer InvalidRequest/10001 below 500 and
// InternalError/50000 from 500.
var statusAnswers = map[int]struct {
	code string
	nhn  int
}{
	http.StatusBadRequest:            {CodeInvalidRequest, NHNInvalidParameter},
	http.StatusUnauthorized:          {CodeUnauthorized, NHNUnauthorized},
	http.StatusForbidden:             {CodeUnauthorized, NHNUnauthorized},
	http.StatusNotFound:              {CodeNotFound, NHNNotFound},
	http.StatusMethodNotAllowed:      {CodeMethodNotAllowed, NHNInvalidParameter},
	http.StatusConflict:              {CodeConflict, NHNInvalidParameter},
	http.StatusPreconditionFailed:    {CodePrecondition, NHNInvalidParameter},
	http.StatusRequestEntityTooLarge: {CodeTooLarge, NHNPayloadTooLarge},
	http.StatusTooManyRequests:       {CodeRateLimited, NHNRateLimited},
	http.StatusUnprocessableEntity:   {CodeIdempotencyConflict, NHNInvalidParameter},
	http.StatusServiceUnavailable:    {CodeUnavailable, NHNTemporalUnavailble},
}

func answerStatus(status int, msg string) answer {
	a := answer{status: status, code: CodeInternal, nhn: NHNInternalError, msg: msg}
	if s, ok := statusAnswers[status]; ok {
		a.code, a.nhn = s.code, s.nhn
	} else if status < 500 {
		a.code, a.nhn = CodeInvalidRequest, NHNInvalidParameter
	}
	return a
}

// serviceErrors is the one table from service errors to both APIs'
// answers, first match wins. nhn 0 takes the status's resultCode; a nil
// msg answers err.Error().
var serviceErrors = []struct {
	is         func(error) bool
	status     int
	nhn        int
	retryAfter string
	msg        func(err error) string
}{
	{is: isValidation, status: http.StatusBadRequest, msg: validationMsg},
	// A credential whose scope does not cover the body's appKey.
	{is: is(service.ErrForbidden), status: http.StatusForbidden},
	// An Idempotency-Key reused with another body (service/prewarm.go).
	{is: is(service.ErrIdempotencyConflict), status: http.StatusUnprocessableEntity},
	// Admission: the workers are behind (service/admission.go).
	{is: is(service.ErrOverloaded), status: http.StatusTooManyRequests, retryAfter: "2"},
	{is: is(service.ErrWorkersUnavailable), status: http.StatusServiceUnavailable, retryAfter: "5"},
	// An API built without a Temporal client (service.ErrNoTemporal).
	{is: is(service.ErrNoTemporal), status: http.StatusServiceUnavailable},
	// The payload store (URL lists, pair rows) does not answer: a new job
	// was not started, a read of a job's lists cannot be served; the same
	// request succeeds once it is back, and running jobs resume then.
	{is: is(payload.ErrUnavailable), status: http.StatusServiceUnavailable, retryAfter: "5", msg: func(error) string {
		return "the payload store does not answer; retry later (no new job was started; running jobs resume when it is back)"
	}},
	// Temporal or its database does not answer (a restart, an outage):
	// the request can be sent again as is (service.IsTemporalUnavailable).
	{is: service.IsTemporalUnavailable, status: http.StatusServiceUnavailable, retryAfter: "5", msg: func(error) string {
		return "Temporal or its database does not answer; retry later (running jobs continue when it is back)"
	}},
	// NHN's purge rate rules: one request per second per appKey, one ALL per
	// five minutes per domain.
	{is: is(service.ErrRateLimited), status: http.StatusTooManyRequests},
	{is: is(service.ErrInvalidState), status: http.StatusConflict, nhn: NHNInvalidState},
	{is: is(service.ErrInProgress), status: http.StatusConflict, nhn: NHNOperationInFlight},
	{is: is(service.ErrExists), status: http.StatusConflict},
	// A /v1 write with a stale If-Match.
	{is: is(service.ErrVersionMismatch), status: http.StatusPreconditionFailed},
	// An unknown domain is bad input in a JSON body (a schedule's
	// purge.domain) and NHN's "not found" on /v1.5.
	{is: is(service.ErrUnknownDomain), status: http.StatusBadRequest, nhn: NHNNotFound, msg: func(err error) string {
		return "unknown domain: no distribution of this appKey has it (" + err.Error() + ")"
	}},
	{is: service.IsNotFound, status: http.StatusNotFound, msg: notFoundMsg},
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func isValidation(err error) bool {
	var ve *service.ValidationError
	return errors.As(err, &ve)
}

func validationMsg(err error) string {
	var ve *service.ValidationError
	errors.As(err, &ve)
	return ve.Msg
}

// subjectError names what a request was about, so that a not-found answer
// says "no prewarm request <id>" instead of Temporal's internals.
type subjectError struct {
	what string
	err  error
}

func (e *subjectError) Error() string { return e.what + ": " + e.err.Error() }
func (e *subjectError) Unwrap() error { return e.err }

// about wraps a service error with the subject of the request ("prewarm
// request <id>"); nil stays nil.
func about(what string, err error) error {
	if err == nil {
		return nil
	}
	return &subjectError{what: what, err: err}
}

func notFoundMsg(err error) string {
	var se *subjectError
	if errors.As(err, &se) {
		return "no " + se.what
	}
	return "not found"
}

// answerFor maps any error a handler returns to its answer. Errors no row
// matches are internal: 500/50000 with a fixed message.
func answerFor(err error) answer {
	var apiErr *APIError
	var he *echo.HTTPError
	var le *service.LimitError
	switch {
	case errors.As(err, &le):
		a := answerStatus(http.StatusTooManyRequests, le.Error())
		a.retryAfter, a.limit = strconv.Itoa(le.RetryAfterSeconds()), le
		return a
	case errors.As(err, &apiErr):
		a := answerStatus(apiErr.Status, apiErr.Message)
		a.code = apiErr.Code
		return a
	case errors.As(err, &he):
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		return answerStatus(he.Code, msg)
	}
	for _, row := range serviceErrors {
		if !row.is(err) {
			continue
		}
		msg := err.Error()
		if row.msg != nil {
			msg = row.msg(err)
		}
		a := answerStatus(row.status, msg)
		if row.nhn != 0 {
			a.nhn = row.nhn
		}
		a.retryAfter = row.retryAfter
		return a
	}
	return answerStatus(http.StatusInternalServerError, "internal error")
}

// handleError renders every error in the envelope of the route it came
// from: ErrorBody with the answer's status, or on /v1.5 NHN's header with
// HTTP 200. Internal errors are logged with the request id, never shown.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	a := answerFor(err)
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	if a.status >= 500 {
		s.d.Logger.Error("request failed", zap.String("requestId", rid), zap.String("route", c.Path()), zap.Error(err))
	}
	if a.retryAfter != "" {
		c.Response().Header().Set("Retry-After", a.retryAfter)
	}
	if a.limit != nil {
		setRateLimitFields(c.Response().Header(), a.limit)
	}
	if isNHNRoute(c) {
		c.Response().Header().Set(nhnResultHeader, strconv.Itoa(a.nhn))
		_ = c.JSON(http.StatusOK, NHNResponse{Header: NHNHeader{ResultCode: a.nhn, ResultMessage: a.msg}})
		return
	}
	_ = c.JSON(a.status, ErrorBody{Code: a.code, Message: a.msg, RequestID: rid})
}

func isNHNRoute(c echo.Context) bool {
	return strings.HasPrefix(c.Request().URL.Path, "/v1.5/")
}

// setRateLimitFields writes the refusal's RateLimit-Policy and RateLimit
// header fields as draft-ietf-httpapi-ratelimit-headers-09 defines them
// (Structured Field lists, RFC 9651): the policy's quota q per window w
// seconds, and r=0 remaining with t seconds until the quota resets (the
// Retry-After of the refusal).
func setRateLimitFields(h http.Header, le *service.LimitError) {
	w := max(1, int(le.Window.Seconds()+0.999))
	h.Set("RateLimit-Policy", fmt.Sprintf("%q;q=%d;w=%d", le.Policy, le.Quota, w))
	h.Set("RateLimit", fmt.Sprintf("%q;r=0;t=%d", le.Policy, le.RetryAfterSeconds()))
}
