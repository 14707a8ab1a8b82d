package httpapi

import (
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
	if err := bind(c, &req, "JSON with id, kind, cron or interval, and prewarm or purge"); err != nil {
		return err
	}
	v, err := s.svc().CreateSchedule(c.Request().Context(), req)
	if err != nil {
		return err
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
	if err != nil {
		return about("schedule "+c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) scheduleAction(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := s.svc().ScheduleAction(c.Request().Context(), c.Param("id"), action)
		if err != nil {
			return about("schedule "+c.Param("id"), err)
		}
		if action == "delete" {
			return c.NoContent(http.StatusNoContent)
		}
		v, err := s.svc().ScheduleAfterAction(c.Request().Context(), c.Param("id"))
		if err != nil {
			return about("schedule "+c.Param("id"), err)
		}
		return c.JSON(http.StatusOK, v)
	}
}
