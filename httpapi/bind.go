package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"
)

// MaxBodyBytes bounds every request body: 32 MiB covers a 100,000-URL
// prewarm list. A larger body is answered 413 (NHN: 10005) before it is
// read into memory.
const MaxBodyBytes = 32 << 20

var errTooLarge = &APIError{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
	Message: fmt.Sprintf("request body is larger than %d MiB", MaxBodyBytes>>20)}

// bind decodes the request body, exactly one JSON value, into v; every
// route's body goes through it. expect describes the body for the
// messages ("JSON with url_list, ..."). Refused, as 400 (NHN
// 10001): an empty body, invalid JSON, a value of the wrong shape, and any
// data after the value other than white space. Refused as 413: a body over
// MaxBodyBytes.
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
	if r.ContentLength > MaxBodyBytes {
		return errTooLarge
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return errTooLarge
		case errors.Is(err, io.EOF) && optional:
			return nil
		case errors.Is(err, io.EOF):
			return badRequest("request body is empty; the body must be " + expect)
		}
		return badRequest("request body is not valid JSON: " + err.Error() + "; the body must be " + expect)
	}
	// After the value only white space may follow: Token reads the next
	// token, and io.EOF is the one answer that means "nothing".
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errTooLarge
		}
		return badRequest("request body has data after the JSON value: send exactly one JSON object")
	}
	return nil
}
