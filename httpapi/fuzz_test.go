package httpapi

import (
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/labstack/echo/v4"
)

// Query parameters of the list routes: never a panic, a rejection is
// always the route's own 4xx, and an accepted value is the number given
// (or the default when none is).
func FuzzQueryParams(f *testing.F) {
	f.Add("1", "20", "2018-02-22T09:00:00.000Z")
	f.Add("0", "-1", "yesterday")
	f.Add("99999999999999999999", "1e3", "")
	f.Add("3", "50", "")
	e := echo.New()
	f.Fuzz(func(t *testing.T, page, size, ts string) {
		req := httptest.NewRequest("GET", "/x", nil)
		q := req.URL.Query()
		q.Set("page", page)
		q.Set("itemsPerPage", size)
		req.URL.RawQuery = q.Encode()
		c := e.NewContext(req, httptest.NewRecorder())
		p, s, err := paging(c, 20, 1000)
		if err == nil && (p < 1 || s < 1 || s > 1000) {
			t.Fatalf("accepted page %d size %d", p, s)
		}
		if err == nil {
			wantP, wantS := 1, 20
			if page != "" {
				wantP, _ = strconv.Atoi(page)
			}
			if size != "" {
				wantS, _ = strconv.Atoi(size)
			}
			if p != wantP || s != wantS {
				t.Fatalf("page %q size %q read as %d, %d; want %d, %d", page, size, p, s, wantP, wantS)
			}
		}
		if err != nil {
			if ae, ok := err.(*APIError); !ok || ae.Status != 400 {
				t.Fatalf("rejection %v is not a 400", err)
			}
		}
		_, _ = parseNHNTime(ts)
	})
}
