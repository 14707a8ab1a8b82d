package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
)

// routesTraffic: GET /v1/traffic?distribution=D&edge=E&step=1s|1m&since=UNIX
// answers the live traffic of every edge (or E) for every distribution
// (or D) gathered from the edges' connectors (service.Traffic), read on
// every appKey (docs/console.md).
func (s *Server) routesTraffic(e *echo.Echo) {
	e.GET("/v1/traffic", s.getTraffic, s.requireAPIKey)
}

func (s *Server) getTraffic(c echo.Context) error {
	q, err := trafficQuery(c)
	if err != nil {
		return err
	}
	v, err := s.svc().Traffic(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func trafficQuery(c echo.Context) (service.TrafficQuery, error) {
	q := service.TrafficQuery{Distribution: c.QueryParam("distribution"), Edge: c.QueryParam("edge"), Step: c.QueryParam("step")}
	if q.Step == "" {
		q.Step = "1s"
	}
	if v := c.QueryParam("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return q, badRequest("since is a Unix time in seconds")
		}
		q.Since = n
	}
	return q, nil
}
