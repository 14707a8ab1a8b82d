package httpapi

import "github.com/labstack/echo/v4"

func (s *Server) routesPrewarm(e *echo.Echo) {}
