package httpapi

import (
	"crypto/subtle"
	"net/http"

	"github.com/labstack/echo/v4"
)

// requireAPIKey guards the Prewarm and operations routes with x-api-key, as
// API Gateway does for the Prewarm solution. With no keys configured the
// routes are open (dev); the start-up log says so.
func (s *Server) requireAPIKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(s.d.Config.APIKeys) == 0 {
			return next(c)
		}
		got := c.Request().Header.Get("x-api-key")
		if got != "" && matchesAny(got, s.d.Config.APIKeys) {
			return next(c)
		}
		return &APIError{Status: http.StatusForbidden, Code: CodeUnauthorized, Message: "missing or invalid x-api-key"}
	}
}

// matchesAny compares against every key, always, in constant time per key,
// so timing reveals neither a key nor which one matched.
func matchesAny(got string, keys []string) bool {
	ok := 0
	for _, k := range keys {
		ok |= subtle.ConstantTimeCompare([]byte(got), []byte(k))
	}
	return ok == 1
}
