package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

// NHN v1.5 distributions, plus suspend and resume as extensions.
func (s *Server) routesDistributions(e *echo.Echo) {
	g := e.Group("/v1.5/appKeys/:appKey", s.requireAppKey)
	g.POST("/distributions", s.createDistributions)
	g.GET("/distributions", s.listDistributions)
	g.PUT("/distributions", s.putDistribution)
	g.PATCH("/distributions", s.patchDistribution)
	g.DELETE("/distributions", s.changeDistributions(workflows.UpdateDelete))
	g.PUT("/distributions/suspend", s.changeDistributions(workflows.UpdateSuspend))
	g.PUT("/distributions/resume", s.changeDistributions(workflows.UpdateResume))
}

type distributionsResponse struct {
	Header        NHNHeader                  `json:"header"`
	Distributions []service.DistributionView `json:"distributions"`
}

func (s *Server) createDistributions(c echo.Context) error {
	var req struct {
		Distributions []service.DistributionBody `json:"distributions"`
	}
	if err := bind(c, &req, `JSON with distributions`); err != nil {
		return err
	}
	views, err := s.svc().CreateDistributions(c.Request().Context(), c.Param("appKey"), req.Distributions, callerOf(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, distributionsResponse{Header: NHNOK(), Distributions: views})
}

func (s *Server) listDistributions(c echo.Context) error {
	views, err := s.svc().ListDistributions(c.Request().Context(), c.Param("appKey"), c.QueryParam("domain"), c.QueryParam("status"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, distributionsResponse{Header: NHNOK(), Distributions: views})
}

func (s *Server) putDistribution(c echo.Context) error   { return s.updateDistribution(c, false) }
func (s *Server) patchDistribution(c echo.Context) error { return s.updateDistribution(c, true) }

func (s *Server) updateDistribution(c echo.Context, partial bool) error {
	var b service.DistributionBody
	if err := bind(c, &b, `JSON with domain`); err != nil {
		return err
	}
	if err := s.svc().UpdateDistribution(c.Request().Context(), c.Param("appKey"), b, partial, callerOf(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, NHNResponse{Header: NHNOK()})
}

// callerOf is who makes a distribution change, as its version records
// it: the service.Caller the authentication middleware put in the request
// context (its request id cut to maxRecordedRequestID bytes: versions
// keep it in the workflow state).
func callerOf(c echo.Context) service.Caller {
	return service.CallerFrom(c.Request().Context())
}

// maxRecordedRequestID bounds the request id a version records.
const maxRecordedRequestID = 128

func (s *Server) changeDistributions(update string) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req struct {
			Domains []string `json:"domains"`
		}
		if err := bind(c, &req, `JSON with domains`); err != nil {
			return err
		}
		if err := s.svc().ChangeDistributions(c.Request().Context(), c.Param("appKey"), req.Domains, update, callerOf(c)); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, NHNResponse{Header: NHNOK()})
	}
}
