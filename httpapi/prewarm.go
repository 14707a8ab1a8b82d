package httpapi

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
)

// Prewarm API of the CloudFront Extensions solution: POST /prewarm,
// GET /status?requestID=, plus GET /prewarm/:id and the per-pair view.
func (s *Server) routesPrewarm(e *echo.Echo) {
	g := e.Group("", s.requireAPIKey)
	g.POST("/prewarm", s.startPrewarm)
	g.GET("/status", s.prewarmStatus)
	g.GET("/prewarm/:id", s.prewarmStatus)
	g.GET("/prewarm/:id/edges", s.prewarmPairs)
}

func (s *Server) startPrewarm(c echo.Context) error {
	var req service.PrewarmRequest
	if err := bind(c, &req, "JSON with url_list, cf_domain, target_type and region"); err != nil {
		return err
	}
	id, err := s.svc().StartPrewarm(c.Request().Context(), req, c.Request().Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"requestID": id})
}

func (s *Server) prewarmStatus(c echo.Context) error {
	id := c.Param("id")
	if id == "" {
		id = c.QueryParam("requestID")
	}
	if id == "" {
		return badRequest("requestID is required (?requestID=...)")
	}
	page, size, err := paging(c, 1000, 10000)
	if err != nil {
		return err
	}
	if err := s.svc().AuthorizePrewarmRead(c.Request().Context(), id); err != nil {
		return about("prewarm request "+id, err)
	}
	st, err := s.svc().PrewarmStatus(c.Request().Context(), id, page, size)
	if err != nil {
		return about("prewarm request "+id, err)
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) prewarmPairs(c echo.Context) error {
	page, size, err := paging(c, 1000, 10000)
	if err != nil {
		return err
	}
	if err := s.svc().AuthorizePrewarmRead(c.Request().Context(), c.Param("id")); err != nil {
		return about("prewarm request "+c.Param("id"), err)
	}
	res, err := s.svc().PrewarmPairs(c.Request().Context(), c.Param("id"), page, size)
	if err != nil {
		return about("prewarm request "+c.Param("id"), err)
	}
	if c.QueryParam("format") == "csv" || strings.Contains(c.Request().Header.Get("Accept"), "text/csv") {
		w := c.Response()
		w.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"edgeId", "url", "state", "status", "cache", "age", "attempts", "durationMs", "error"})
		for _, p := range res.Pairs {
			_ = cw.Write([]string{p.EdgeID, p.URL, p.State, strconv.Itoa(p.Status), p.Cache, strconv.Itoa(p.Age), strconv.Itoa(p.Attempts), strconv.FormatInt(p.DurationMS, 10), p.Error})
		}
		cw.Flush()
		return cw.Error()
	}
	return c.JSON(http.StatusOK, res)
}

// paging reads page (from 1) and pageSize (itemsPerPage is accepted too).
func paging(c echo.Context, def, max int) (int, int, error) {
	page, size := 1, def
	if v := c.QueryParam("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return 0, 0, badRequest("page must be a whole number from 1")
		}
		page = n
	}
	for _, name := range []string{"pageSize", "itemsPerPage"} {
		if v := c.QueryParam(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > max {
				return 0, 0, badRequest(name + " must be a whole number from 1 to " + strconv.Itoa(max))
			}
			size = n
		}
	}
	return page, size, nil
}
