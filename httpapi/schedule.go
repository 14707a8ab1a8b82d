package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
)

// Recurring prewarms and purges as Temporal Schedules (they also show on
// the Web UI's schedules page).
func (s *Server) routesSchedules(e *echo.Echo) {
	g := e.Group("/v1/schedules", s.requireAPIKey)
	g.POST("", s.createSchedule)
	g.GET("", s.listSchedules)
	g.GET("/:id", s.getSchedule)
	g.DELETE("/:id", s.scheduleAction("delete"))
	g.POST("/:id/pause", s.scheduleAction("pause"))
	g.POST("/:id/unpause", s.scheduleAction("unpause"))
	g.POST("/:id/trigger", s.scheduleAction("trigger"))
}

func (s *Server) createSchedule(c echo.Context) error {
	var req service.ScheduleRequest
	if err := c.Bind(&req); err != nil {
		return badRequest("body must be a JSON schedule: " + err.Error())
	}
	v, err := s.svc().CreateSchedule(c.Request().Context(), req)
	if errors.Is(err, service.ErrExists) {
		return &APIError{Status: http.StatusConflict, Code: CodeConflict, Message: err.Error()}
	}
	if errors.Is(err, service.ErrUnknownDomain) {
		return badRequest("purge.domain is not a distribution of appKey " + req.AppKey)
	}
	if err != nil {
		return validationOr(err)
	}
	return c.JSON(http.StatusCreated, v)
}

func (s *Server) listSchedules(c echo.Context) error {
	list, err := s.svc().ListSchedules(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"schedules": list})
}

func (s *Server) getSchedule(c echo.Context) error {
	v, err := s.svc().Schedule(c.Request().Context(), c.Param("id"))
	if service.IsNotFound(err) {
		return notFound("no schedule " + c.Param("id"))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) scheduleAction(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := s.svc().ScheduleAction(c.Request().Context(), c.Param("id"), action)
		if service.IsNotFound(err) {
			return notFound("no schedule " + c.Param("id"))
		}
		if err != nil {
			return validationOr(err)
		}
		if action == "delete" {
			return c.NoContent(http.StatusNoContent)
		}
		v, err := s.svc().Schedule(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, v)
	}
}
