package httpapi

import (
	"encoding/json"
	"errors"
	"io"
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
	if err := decodeNHN(c, &req); err != nil {
		return err
	}
	res, err := s.svc().StartPurge(c.Request().Context(), c.Param("appKey"), req)
	if err != nil {
		return nhnServiceError(err)
	}
	return c.JSON(http.StatusOK, purgeResponse{Header: NHNOK(), PurgeResult: res})
}

func (s *Server) listPurges(c echo.Context) error {
	page, size, err := paging(c, 20, 1000)
	if err != nil {
		return nhnError(NHNInvalidParameter, err.(*APIError).Message)
	}
	var start, end *time.Time
	for name, dst := range map[string]**time.Time{"startTime": &start, "endTime": &end} {
		if v := c.QueryParam(name); v != "" {
			t, err := parseNHNTime(v)
			if err != nil {
				return nhnError(NHNInvalidParameter, name+` must look like "2018-02-22T09:00:00.000Z"`)
			}
			*dst = &t
		}
	}
	list, err := s.svc().ListPurges(c.Request().Context(), c.Param("appKey"), c.QueryParam("domain"), start, end, page, size)
	if err != nil {
		return nhnServiceError(err)
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

// decodeNHN binds a JSON body, answering NHN's envelope on bad input.
func decodeNHN(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	if err := dec.Decode(v); err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return he
		}
		if errors.Is(err, io.EOF) {
			return nhnError(NHNInvalidParameter, "request body is empty")
		}
		return nhnError(NHNInvalidParameter, "request body is not valid JSON: "+err.Error())
	}
	return nil
}

// nhnServiceError maps service errors to resultCodes.
func nhnServiceError(err error) error {
	var ve *service.ValidationError
	switch {
	case errors.As(err, &ve):
		return nhnError(NHNInvalidParameter, ve.Msg)
	case errors.Is(err, service.ErrUnknownDomain):
		return nhnError(NHNNotFound, "unknown domain: no distribution of this appKey has it ("+err.Error()+")")
	case errors.Is(err, service.ErrRateLimited):
		return nhnError(NHNRateLimited, err.Error())
	case errors.Is(err, service.ErrInvalidState):
		return nhnError(NHNInvalidState, err.Error())
	case errors.Is(err, service.ErrInProgress):
		return nhnError(NHNOperationInFlight, err.Error())
	}
	return err
}
