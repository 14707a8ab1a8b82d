package httpapi

import "github.com/labstack/echo/v4"

func (s *Server) routesDistributions(e *echo.Echo) {}
