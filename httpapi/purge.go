package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
)

// NHN v1.5 purges: POST and GET /v1.5/appKeys/:appKey/purges.
func (s *Server) routesPurge(e *echo.Echo) {
	g := e.Group("/v1.5/appKeys/:appKey", s.requireAppKey)
	g.POST("/purges", s.startPurge)
	g.GET("/purges", s.listPurges)
}

type purgeResponse struct {
	Header NHNHeader `json:"header"`
	service.PurgeResult
}

type purgeListResponse struct {
	Header NHNHeader `json:"header"`
	service.PurgeList
}

func (s *Server) startPurge(c echo.Context) error {
	var req service.PurgeRequest
	if err := bind(c, &req, `JSON with domain, purgeType and purgeList`); err != nil {
		return err
	}
	res, err := s.svc().StartPurge(c.Request().Context(), c.Param("appKey"), req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, purgeResponse{Header: NHNOK(), PurgeResult: res})
}

func (s *Server) listPurges(c echo.Context) error {
	page, size, err := paging(c, 20, 1000)
	if err != nil {
		return err
	}
	var start, end *time.Time
	for name, dst := range map[string]**time.Time{"startTime": &start, "endTime": &end} {
		if v := c.QueryParam(name); v != "" {
			t, err := parseNHNTime(v)
			if err != nil {
				return badRequest(name + ` must look like "2018-02-22T09:00:00.000Z"`)
			}
			*dst = &t
		}
	}
	list, err := s.svc().ListPurges(c.Request().Context(), c.Param("appKey"), c.QueryParam("domain"), start, end, page, size)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, purgeListResponse{Header: NHNOK(), PurgeList: list})
}

func parseNHNTime(v string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.000Z07:00", time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("bad time")
}
