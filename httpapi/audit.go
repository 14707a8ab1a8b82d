package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/service"
)

// GET /v1/audit pages the audit trail (service.ListAudit), oldest first:
// ?appKey= &token= &verb= &since= &until= (RFC 3339) &limit= (1-1000,
// default 100) &cursor= (the last page's next). Admin on every appKey
// sees every record; read scope sees the records of its appKeys.
func (s *Server) routesAudit(e *echo.Echo) {
	e.GET("/v1/audit", s.listAudit, s.authenticate)
}

func (s *Server) listAudit(c echo.Context) error {
	if s.auditStore == nil {
		return &APIError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: service.ErrAuditUnavailable.Error()}
	}
	q := service.AuditQuery{AppKey: c.QueryParam("appKey"), TokenID: c.QueryParam("token"), Verb: c.QueryParam("verb"), Cursor: c.QueryParam("cursor"), Limit: 100}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if v := c.QueryParam(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return badRequest(name + ` must be an RFC 3339 time such as "2026-12-07T10:00:00Z"`)
			}
			*dst = t
		}
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > service.MaxAuditPage {
			return badRequest("limit must be a whole number from 1 to " + strconv.Itoa(service.MaxAuditPage))
		}
		q.Limit = n
	}
	g, _ := service.GrantFrom(c.Request().Context())
	q.Readable, q.All = g.ReadableAppKeys()
	if g.Allows(service.VerbAdmin, "") {
		q.All = true
	}
	page, err := service.ListAudit(c.Request().Context(), s.auditStore, q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

// auditRequest writes the audit record of a mutating request to a route
// with a scope rule, once its answer is final (admitted or refused).
// Requests without a valid credential are audited at most this many a
// second per API process (after a burst): enough to see an attack and who
// it named, bounded against a flood filling the store.
const (
	auditUnauthenticatedRate  = 10
	auditUnauthenticatedBurst = 100
)

func (s *Server) auditRequest(c echo.Context, note *service.AuditNote, workflowIDs []string) {
	req := c.Request()
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return
	}
	verb, ok := RouteVerb(req.Method, c.Path())
	if !ok || s.audit == nil {
		return
	}
	caller := service.CallerFrom(req.Context())
	unauthenticated := caller.KeyID == keyInvalid ||
		(caller.KeyID == keyAnonymous && (c.Response().Status == http.StatusUnauthorized || c.Response().Status == http.StatusForbidden))
	if unauthenticated && !s.auditUnauthenticated.Allow() {
		// Anyone can send requests without a valid credential: past the
		// allowance they are counted, not stored, so they cannot fill the
		// store faster than retention empties it.
		metrics.AuditRecords.WithLabelValues("sampled_out").Inc()
		return
	}
	r := service.AuditRecord{
		Time: time.Now().UTC(), TokenID: caller.KeyID, AppKey: caller.AppKey, Verb: verb,
		Target: auditTarget(c), RequestID: requestIDOf(c), Status: c.Response().Status,
	}
	if r.AppKey == "" {
		r.AppKey = note.AppKey()
	}
	if len(workflowIDs) > service.MaxAuditWorkflows {
		r.MoreWorkflows = len(workflowIDs) - service.MaxAuditWorkflows
		workflowIDs = workflowIDs[:service.MaxAuditWorkflows]
	}
	r.WorkflowIDs = workflowIDs
	if isNHNRoute(c) {
		rc := NHNSuccess
		if v, err := strconv.Atoi(c.Response().Header().Get(nhnResultHeader)); err == nil {
			rc = v
		}
		r.ResultCode = &rc
	}
	s.audit.Record(r)
}

// auditTarget is "METHOD route" and the path's parameters, cut to
// service.MaxAuditTarget bytes.
func auditTarget(c echo.Context) string {
	t := c.Request().Method + " " + c.Path()
	for i, name := range c.ParamNames() {
		if i < len(c.ParamValues()) {
			t += " " + name + "=" + c.ParamValues()[i]
		}
	}
	if len(t) > service.MaxAuditTarget {
		t = t[:service.MaxAuditTarget]
	}
	return t
}

// FlushAudit writes the queued audit records (up to ctx's end); the
// process calls it after draining requests.
func (s *Server) FlushAudit(ctx context.Context) error {
	if s.audit == nil {
		return nil
	}
	return s.audit.Close(ctx)
}

// openAudit starts this API's audit log on the payload store when it can
// list (payload.Bucket); without one no record is kept, and the start-up
// log says so.
func (s *Server) openAudit() {
	store, ok := s.d.Payloads.(service.AuditStore)
	if !ok || store == nil {
		if s.d.Payloads != nil {
			s.d.Logger.Warn("audit trail off: the payload store cannot list")
		}
		return
	}
	s.auditStore = store
	s.audit = service.NewAuditLog(store, s.d.Config.AuditQueue, s.d.Config.AuditRetention, s.d.Logger.Named("audit"))
}
