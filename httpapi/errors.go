package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/service"
)

// ErrorBody is the one error shape of every non-/v1.5 route:
//
//	{"code": "InvalidRequest", "message": "url_list must not be empty", "requestId": "..."}
//
// /v1.5 routes answer NHN's envelope instead (see nhn.go).
type ErrorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"requestId,omitempty"`
}

// APIError is returned by handlers and rendered by handleError.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Error codes of ErrorBody.
const (
	CodeInvalidRequest = "InvalidRequest"
	CodeUnauthorized   = "Unauthorized"
	CodeNotFound       = "NotFound"
	CodeConflict       = "Conflict"
	CodeTooLarge       = "PayloadTooLarge"
	CodeUnavailable    = "ServiceUnavailable"
	CodeRateLimited    = "TooManyRequests"
	CodeInternal       = "InternalError"
)

func badRequest(msg string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: msg}
}

func notFound(msg string) *APIError {
	return &APIError{Status: http.StatusNotFound, Code: CodeNotFound, Message: msg}
}

// handleError renders every error in the shape of the route it came from.
// Unknown errors are logged with the request id and answered as 500 without
// internals; bad input never reaches here as a 500 because handlers validate.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if isNHNRoute(c) && renderNHNError(c, err) {
		return
	}
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	status, code, msg := http.StatusInternalServerError, CodeInternal, "internal error"
	var apiErr *APIError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &apiErr):
		status, code, msg = apiErr.Status, apiErr.Code, apiErr.Message
	case errors.Is(err, service.ErrOverloaded):
		status, code, msg = http.StatusTooManyRequests, CodeRateLimited, err.Error()
		c.Response().Header().Set("Retry-After", "2")
	case errors.Is(err, service.ErrWorkersUnavailable):
		status, code, msg = http.StatusServiceUnavailable, CodeUnavailable, service.ErrWorkersUnavailable.Error()
		c.Response().Header().Set("Retry-After", "5")
	case errors.As(err, &he):
		status = he.Code
		msg = http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		switch he.Code {
		case http.StatusNotFound:
			code = CodeNotFound
		case http.StatusRequestEntityTooLarge:
			code = CodeTooLarge
		case http.StatusUnauthorized, http.StatusForbidden:
			code = CodeUnauthorized
		case http.StatusMethodNotAllowed:
			code = "MethodNotAllowed"
		default:
			if he.Code < 500 {
				code = CodeInvalidRequest
			}
		}
	}
	if status >= 500 {
		s.d.Logger.Error("request failed", zap.String("requestId", rid), zap.String("route", c.Path()), zap.Error(err))
	}
	if isNHNRoute(c) {
		writeNHNError(c, status, msg)
		return
	}
	_ = c.JSON(status, ErrorBody{Code: code, Message: msg, RequestID: rid})
}

func isNHNRoute(c echo.Context) bool {
	return strings.HasPrefix(c.Request().URL.Path, "/v1.5/")
}
