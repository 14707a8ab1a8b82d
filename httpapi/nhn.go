package httpapi

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// NHNHeader is the envelope every /v1.5 response carries. NHN answers every
// request with HTTP 200 and puts the outcome here.
type NHNHeader struct {
	IsSuccessful  bool   `json:"isSuccessful"`
	ResultCode    int    `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
}

// NHNResponse is a body with nothing but the header.
type NHNResponse struct {
	Header NHNHeader `json:"header"`
}

// resultCodes of the /v1.5 API; the README lists them with their meaning.
const (
	NHNSuccess            = 0
	NHNInvalidParameter   = 10001
	NHNNotFound           = 10002
	NHNUnauthorized       = 10003
	NHNOperationInFlight  = 10004
	NHNPayloadTooLarge    = 10005
	NHNRateLimited        = 30001
	NHNInvalidState       = 30003
	NHNInternalError      = 50000
	NHNTemporalUnavailble = 50001
)

// NHNOK is the success header.
func NHNOK() NHNHeader {
	return NHNHeader{IsSuccessful: true, ResultCode: NHNSuccess, ResultMessage: "SUCCESS"}
}

// NHNError is returned by /v1.5 handlers for a failed request.
type NHNError struct {
	Code    int
	Message string
}

func (e *NHNError) Error() string { return e.Message }

func nhnError(code int, msg string) *NHNError { return &NHNError{Code: code, Message: msg} }

func writeNHNError(c echo.Context, status int, msg string) {
	code := NHNInternalError
	switch {
	case status == http.StatusRequestEntityTooLarge:
		code = NHNPayloadTooLarge
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		code = NHNUnauthorized
	case status == http.StatusNotFound:
		code = NHNNotFound
	case status == http.StatusTooManyRequests:
		code = NHNRateLimited
	case status == http.StatusServiceUnavailable:
		code = NHNTemporalUnavailble
	case status >= 400 && status < 500:
		code = NHNInvalidParameter
	}
	c.Response().Header().Set(nhnResultHeader, strconv.Itoa(code))
	_ = c.JSON(http.StatusOK, NHNResponse{Header: NHNHeader{ResultCode: code, ResultMessage: msg}})
}

// nhnResultHeader carries a failed resultCode to the metrics middleware
// (NHN answers errors with HTTP 200, so the status alone cannot tell).
const nhnResultHeader = "X-Cdnflow-Result-Code"

// renderNHNError answers an *NHNError (or anything else) in the envelope.
func renderNHNError(c echo.Context, err error) bool {
	var ne *NHNError
	if errors.As(err, &ne) {
		c.Response().Header().Set(nhnResultHeader, strconv.Itoa(ne.Code))
		_ = c.JSON(http.StatusOK, NHNResponse{Header: NHNHeader{ResultCode: ne.Code, ResultMessage: ne.Message}})
		return true
	}
	return false
}

// requireAppKey checks the SecretKey in Authorization against the appKey of
// the path. Unknown appKeys and wrong secrets get the same answer, and the
// comparison runs in constant time, so neither leaks which appKeys exist.
func (s *Server) requireAppKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		appKey := c.Param("appKey")
		secret, known := s.d.Config.AppKeys[appKey]
		if !known {
			secret = "\x00unknown-app-key" // still compare, to keep timing flat
		}
		got := c.Request().Header.Get("Authorization")
		if subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 || !known {
			return nhnError(NHNUnauthorized, "invalid appKey or SecretKey in Authorization")
		}
		return next(c)
	}
}
