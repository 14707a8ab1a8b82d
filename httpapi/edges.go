package httpapi

import (
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/inventory"
)

type edgeCheckRequest struct {
	EdgeIDs []string `json:"edgeIds"`
}

// edgeView is an inventory edge and what the edge sync loop last saw on
// it: the live VCL and site table, when it was checked, its last drift.
type edgeView struct {
	inventory.Edge
	Sync *activities.EdgeSyncReport `json:"sync,omitempty"`
}

func (s *Server) listEdges(c echo.Context) error {
	reports, err := s.svc().EdgeSync(c.Request().Context())
	out := map[string]any{}
	if err != nil {
		// The inventory still answers; the sync state is missing.
		out["syncError"] = err.Error()
	}
	views := make([]edgeView, 0, len(s.d.Inventory.Edges))
	for _, e := range s.d.Inventory.Edges {
		v := edgeView{Edge: e}
		if r, ok := reports[e.ID]; ok {
			v.Sync = &r
		}
		views = append(views, v)
	}
	out["edges"] = views
	return c.JSON(http.StatusOK, out)
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
