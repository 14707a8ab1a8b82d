package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

// Release routes (docs/releases.md). POST and cancel need purge scope on
// some appKey, the reads read scope; the service checks the scopes on the
// release's appKey (purge, prewarm).

// Server-Sent Events of a release (GET /v1/releases/:id/events): how often
// the stream reads the release (at most once a second per stream), the
// comment line that keeps proxies from closing a quiet stream, the streams
// one API process serves at once and those of one appKey (each reads the
// release every releaseEventEvery), the consecutive failed reads that end
// a stream, and how often the caller's credential is checked again.
const (
	releaseEventEvery      = time.Second
	releaseKeepAlive       = 15 * time.Second
	maxReleaseStreams      = 256
	maxReleaseStreamsPerAK = 16
	releaseStreamMaxLife   = service.MaxReleaseDeadline + time.Hour
	releaseStreamMaxErrors = 5
	releaseStreamReauth    = 30 * time.Second
)

var releaseStreams atomic.Int64

// releaseStreamSet is a Server's release event streams: closing ends them
// all (StopStreams, at shutdown); perAppKey counts each appKey's open ones.
type releaseStreamSet struct {
	once      sync.Once
	closing   chan struct{}
	stopOnce  sync.Once
	mu        sync.Mutex
	perAppKey map[string]int
}

func (r *releaseStreamSet) init() {
	r.once.Do(func() { r.closing, r.perAppKey = make(chan struct{}), map[string]int{} })
}

// StopStreams ends every release event stream of s (each sends no more
// events and returns); http.Server.Shutdown would otherwise wait for them,
// since it cancels no request context. Safe to call more than once.
func (s *Server) StopStreams() {
	s.streams.init()
	s.streams.stopOnce.Do(func() { close(s.streams.closing) })
}

// acquire takes one of appKey's stream slots; false when it has
// maxReleaseStreamsPerAK open.
func (r *releaseStreamSet) acquire(appKey string) bool {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perAppKey[appKey] >= maxReleaseStreamsPerAK {
		return false
	}
	r.perAppKey[appKey]++
	return true
}

func (r *releaseStreamSet) release(appKey string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perAppKey[appKey]--; r.perAppKey[appKey] <= 0 {
		delete(r.perAppKey, appKey)
	}
}

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
// Errors before the stream starts are in the /v1 envelope (429 when this
// process serves maxReleaseStreams streams, or the release's appKey
// maxReleaseStreamsPerAK). A read that fails mid-stream is an "error"
// event; releaseStreamMaxErrors in a row end the stream. The stream also
// ends when the API shuts down and when the caller's credential, checked
// every releaseStreamReauth, no longer reads the appKey (an "error" event).
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
	if !s.streams.acquire(st.AppKey) {
		return &APIError{Status: http.StatusTooManyRequests, Code: CodeRateLimited,
			Message: fmt.Sprintf("appKey %s has %d release event streams open; poll GET /v1/releases/{id}", st.AppKey, maxReleaseStreamsPerAK)}
	}
	defer s.streams.release(st.AppKey)
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.streamRelease(c, st)
	return nil
}

// streamRelease writes st's events until the release ended, the client
// left, the API shuts down, the reads keep failing or the credential no
// longer reads the release.
func (s *Server) streamRelease(c echo.Context, st workflows.ReleaseStatus) {
	ctx, id, w := c.Request().Context(), st.ReleaseID, c.Response()
	tick, quiet, reauth := time.NewTicker(releaseEventEvery), time.Now(), time.Now()
	defer tick.Stop()
	var last []byte
	failed := 0
	for n, end := 1, time.Now().Add(releaseStreamMaxLife); time.Now().Before(end); {
		b, _ := json.Marshal(st)
		if !bytes.Equal(b, last) {
			writeEvent(w, strconv.Itoa(n), "progress", b)
			n, last, quiet = n+1, b, time.Now()
		}
		if st.State != workflows.ReleaseRunning {
			writeEvent(w, strconv.Itoa(n), "done", b)
			return
		}
		if time.Since(quiet) > releaseKeepAlive {
			_, _ = fmt.Fprint(w, ": keep-alive\n\n")
			w.Flush()
			quiet = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.streams.closing:
			writeError(w, "the API is shutting down; reconnect or poll GET /v1/releases/"+id)
			return
		case <-tick.C:
		}
		if time.Since(reauth) >= releaseStreamReauth {
			if _, grant, err := s.credential(c, ""); err != nil || !grant.Allows(service.VerbRead, st.AppKey) {
				writeError(w, "the credential no longer reads this release")
				return
			}
			reauth = time.Now()
		}
		next, err := s.svc().Release(ctx, id)
		if err != nil {
			writeError(w, err.Error())
			if failed++; failed >= releaseStreamMaxErrors {
				return
			}
			continue
		}
		st, failed = next, 0
	}
}

// writeError writes an "error" event with message.
func writeError(w *echo.Response, message string) {
	msg, _ := json.Marshal(map[string]string{"message": message})
	writeEvent(w, "", "error", msg)
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
