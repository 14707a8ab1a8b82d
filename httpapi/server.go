// Package httpapi is cdnflow's HTTP face: the Prewarm API of the CloudFront
// Extensions solution and the NHN Cloud CDN v1.5 API. Handlers stay thin:
// bind, validate, call one service function, render.
package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/internal/temporalclient"
	"github.com/cdnflow/cdnflow/internal/tracing"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/service"
)

// Deps is what the API needs: a Temporal client, settings, the inventory
// and the claim-check store (nil: payload.Missing, prewarm requests fail).
type Deps struct {
	Temporal  client.Client
	Config    config.Config
	Inventory *inventory.Inventory
	Logger    *zap.Logger
	Payloads  payload.Store
}

// Server is the Echo application.
type Server struct {
	Echo    *echo.Echo
	d       Deps
	service *service.Service
	// tokens is this API's cache of the token table; audit writes the
	// audit trail to auditStore (nil without a listable payload store).
	tokens *tokenCache
	audit  *service.AuditLog
	// auditUnauthenticated allows auditUnauthenticatedRate records a
	// second of requests without a valid credential (burst
	// auditUnauthenticatedBurst); the rest are counted only.
	auditUnauthenticated *rate.Limiter
	auditStore           service.AuditStore
	// Release event streams (httpapi/release.go): ended at shutdown,
	// counted per appKey.
	streams releaseStreamSet
}

func (s *Server) svc() *service.Service { return s.service }

// New builds the router with every route and middleware.
func New(d Deps) *Server {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	s := &Server{Echo: e, d: d, service: service.New(service.Deps{Temporal: d.Temporal, Config: d.Config, Inventory: d.Inventory, Logger: d.Logger, Store: d.Payloads})}
	e.HTTPErrorHandler = s.handleError
	s.tokens = newTokenCache(d.Config.TokenCacheTTL, s.service.TokenTable)
	s.auditUnauthenticated = rate.NewLimiter(auditUnauthenticatedRate, auditUnauthenticatedBurst)
	s.openAudit()
	// The server span of each request, the root of a job's trace (or the
	// child of the caller's traceparent); probes and scrapes are not traced.
	e.Use(otelecho.Middleware("cdnflow-api", otelecho.WithSkipper(func(c echo.Context) bool {
		switch c.Path() {
		case "/healthz", "/readyz", "/metrics":
			return true
		}
		return false
	})))
	e.Use(middleware.RequestID())
	e.Use(s.accessLog)
	e.Use(middleware.Recover())
	e.Use(limitBody)

	e.GET("/healthz", s.healthz)
	// Scraped from inside the network, like healthz; it carries no job data.
	e.GET("/metrics", echo.WrapHandler(metrics.Handler()))
	e.GET("/readyz", s.readyz)

	v1 := e.Group("/v1", s.requireAPIKey)
	v1.GET("/edges", s.listEdges)
	v1.POST("/edges/check", s.startEdgeCheck)
	v1.GET("/edges/check/:id", s.getEdgeCheck)

	s.routesPrewarm(e)
	s.routesPurge(e)
	s.routesDistributions(e)
	s.routesDistributionVersions(e)
	s.routesSchedules(e)
	s.routesDocs(e)
	s.routesTokens(e)
	s.routesAudit(e)
	// Webhook subscriptions (docs/webhooks.md).
	s.routesWebhooks(e)
	// Releases: purge → prewarm → verify as one job (httpapi/release.go).
	s.routesRelease(e)
	// Live traffic and the operator console (traffic.go, console.go).
	s.routesTraffic(e)
	s.routesConsole(e)
	return s
}

// ServeHTTP lets tests use the server with httptest.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.Echo.ServeHTTP(w, r) }

// Start listens on addr until Shutdown.
func (s *Server) Start(addr string) error {
	srv := &http.Server{Addr: addr, Handler: s.Echo, ReadHeaderTimeout: 10 * time.Second}
	s.Echo.Server = srv
	return s.Echo.StartServer(srv)
}

// Shutdown drains in-flight requests, then writes the queued audit
// records.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopStreams()
	return errors.Join(s.Echo.Shutdown(ctx), s.flushAfterDrain(ctx))
}

// Drain stops hs, the http.Server serving s: the release event streams
// end at once (StopStreams; http.Server.Shutdown cancels no request
// context), in-flight requests drain until ctx ends, and the queued audit
// records are written even when the drain failed (auditFlushGrace). The
// error joins the drain's and the flush's.
func (s *Server) Drain(ctx context.Context, hs *http.Server) error {
	s.StopStreams()
	return errors.Join(hs.Shutdown(ctx), s.flushAfterDrain(ctx))
}

// auditFlushGrace is how long the audit flush may take after a drain that
// used up its context.
const auditFlushGrace = 5 * time.Second

func (s *Server) flushAfterDrain(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditFlushGrace)
	defer cancel()
	return s.FlushAudit(fctx)
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready when Temporal answers; edges are reported, not required,
// because a down edge is a job outcome, not an API outage.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	if _, err := s.d.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "temporal unavailable", "error": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		ctx, started := temporalclient.WithWorkflowIDs(c.Request().Context())
		ctx, note := service.WithAuditNote(ctx)
		c.SetRequest(c.Request().WithContext(ctx))
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req := c.Request()
		code := strconv.Itoa(c.Response().Status)
		metrics.APILatency.WithLabelValues(metricMethod(req.Method), c.Path(), code).Observe(time.Since(start).Seconds())
		if c.Response().Status >= 400 {
			metrics.APIErrors.WithLabelValues(c.Path(), code).Inc()
		} else if rc := c.Response().Header().Get(nhnResultHeader); rc != "" {
			metrics.APIErrors.WithLabelValues(c.Path(), rc).Inc()
		}
		fields := append([]zap.Field{
			zap.String("requestId", c.Response().Header().Get(echo.HeaderXRequestID)),
			zap.String("method", cut(req.Method, 16)),
			zap.String("route", c.Path()),
			zap.Int("status", c.Response().Status),
			zap.Duration("latency", time.Since(start)),
			zap.String("remote", cut(c.RealIP(), 64)),
		}, tracing.LogFields(ctx)...)
		// The jobs the request started or changed (workflow ids).
		if ids := started.IDs(); len(ids) > 0 {
			fields = append(fields, zap.Strings("workflowIds", ids))
		}
		s.d.Logger.Info("http request", fields...)
		s.auditRequest(c, note, started.IDs())
		return nil
	}
}
