package httpapi

import (
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

type edgeCheckRequest struct {
	EdgeIDs []string `json:"edgeIds"`
}

func (s *Server) listEdges(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"edges": s.d.Inventory.Edges})
}

func (s *Server) startEdgeCheck(c echo.Context) error {
	var req edgeCheckRequest
	if err := bindOptional(c, &req, `JSON {"edgeIds": ["ATL56-C1"]}`); err != nil {
		return err
	}
	for _, id := range req.EdgeIDs {
		if _, ok := s.d.Inventory.Get(id); !ok {
			return badRequest("unknown edge " + id)
		}
	}
	id, err := s.svc().StartEdgeCheck(c.Request().Context(), uuid.NewString(), req.EdgeIDs)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]string{"id": id})
}

func (s *Server) getEdgeCheck(c echo.Context) error {
	res, err := s.svc().EdgeCheck(c.Request().Context(), c.Param("id"))
	if err != nil {
		return about("edge check "+c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, res)
}
