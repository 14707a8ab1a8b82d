package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

// Release routes (docs/releases.md). POST and cancel need purge scope on
// some appKey, the reads read scope; the service checks the scopes on the
// release's appKey (purge, prewarm).
func init() {
	routeRules["POST /v1/releases"] = routeRule{service.VerbPurge, inService}
	routeRules["GET /v1/releases/:id"] = routeRule{service.VerbRead, inService}
	routeRules["POST /v1/releases/:id/cancel"] = routeRule{service.VerbPurge, inService}
	routeRules["GET /v1/releases/:id/events"] = routeRule{service.VerbRead, inService}
	routeRules["GET /v1/appKeys/:appKey/purges/:seq"] = routeRule{service.VerbRead, onPathAppKey}
	bodyLimits["POST /v1/releases"] = MaxPrewarmBody + MaxPurgeBody
}

// Server-Sent Events of a release (GET /v1/releases/:id/events): how often
// the stream reads the release, the comment line that keeps proxies from
// closing a quiet stream, and the streams one API process serves at once
// (each reads the release every releaseEventEvery).
const (
	releaseEventEvery    = 500 * time.Millisecond
	releaseKeepAlive     = 15 * time.Second
	maxReleaseStreams    = 256
	releaseStreamMaxLife = service.MaxReleaseDeadline + time.Hour
)

var releaseStreams atomic.Int64

func (s *Server) routesRelease(e *echo.Echo) {
	g := e.Group("/v1", s.requireAPIKey)
	g.POST("/releases", s.startRelease)
	g.GET("/releases/:id", s.getRelease)
	g.POST("/releases/:id/cancel", s.cancelRelease)
	g.GET("/releases/:id/events", s.releaseEvents)
	g.GET("/appKeys/:appKey/purges/:seq", s.purgeReceipts)
}

func (s *Server) startRelease(c echo.Context) error {
	var req service.ReleaseRequest
	if err := bind(c, &req, "JSON with appKey, and purge (NHN purge body) and/or prewarm (Prewarm API body)"); err != nil {
		return err
	}
	res, err := s.svc().StartRelease(c.Request().Context(), req, c.Request().Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, res)
}

func (s *Server) getRelease(c echo.Context) error {
	st, err := s.svc().Release(c.Request().Context(), c.Param("id"))
	if err != nil {
		return about("release "+c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) cancelRelease(c echo.Context) error {
	if err := s.svc().CancelRelease(c.Request().Context(), c.Param("id")); err != nil {
		return about("release "+c.Param("id"), err)
	}
	return c.JSON(http.StatusAccepted, map[string]string{"releaseId": c.Param("id"), "cancel": "requested"})
}

// releaseEvents streams a release as Server-Sent Events (WHATWG HTML
// §9.2): an "progress" event (data: the release's status JSON, id: its
// number) whenever the status changed, read every releaseEventEvery, and
// a final "done" event once the release ended; then the stream closes.
// Errors before the stream starts are in the /v1 envelope; a read that
// fails mid-stream is an "error" event and the stream goes on.
func (s *Server) releaseEvents(c echo.Context) error {
	ctx, id := c.Request().Context(), c.Param("id")
	if releaseStreams.Add(1) > maxReleaseStreams {
		releaseStreams.Add(-1)
		return &APIError{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: "too many release event streams on this API process; poll GET /v1/releases/{id}"}
	}
	defer releaseStreams.Add(-1)
	st, err := s.svc().Release(ctx, id)
	if err != nil {
		return about("release "+id, err)
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	tick, quiet := time.NewTicker(releaseEventEvery), time.Now()
	defer tick.Stop()
	var last []byte
	for n, end := 1, time.Now().Add(releaseStreamMaxLife); time.Now().Before(end); {
		b, _ := json.Marshal(st)
		if !bytes.Equal(b, last) {
			writeEvent(w, strconv.Itoa(n), "progress", b)
			n, last, quiet = n+1, b, time.Now()
		}
		if st.State != workflows.ReleaseRunning {
			writeEvent(w, strconv.Itoa(n), "done", b)
			return nil
		}
		if time.Since(quiet) > releaseKeepAlive {
			_, _ = fmt.Fprint(w, ": keep-alive\n\n")
			w.Flush()
			quiet = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		next, err := s.svc().Release(ctx, id)
		if err != nil {
			msg, _ := json.Marshal(map[string]string{"message": err.Error()})
			writeEvent(w, "", "error", msg)
			continue
		}
		st = next
	}
	return nil
}

func writeEvent(w *echo.Response, id, event string, data []byte) {
	if id != "" {
		_, _ = fmt.Fprintf(w, "id: %s\n", id)
	}
	_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
	w.Flush()
}

// purgeReceipts is the /v1 view of one purge seq: the NHN list's fields
// plus every edge's receipt.
func (s *Server) purgeReceipts(c echo.Context) error {
	seq, err := strconv.ParseInt(c.Param("seq"), 10, 64)
	if err != nil || seq < 0 {
		return &APIError{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: "seq must be a purge seq number"}
	}
	st, err := s.svc().PurgeReceipts(c.Request().Context(), c.Param("appKey"), seq)
	if err != nil {
		return about("purge seq "+c.Param("seq"), err)
	}
	return c.JSON(http.StatusOK, st)
}
