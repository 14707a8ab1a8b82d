package httpapi

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

// consoleFiles are the console's templates and static files (no build
// step: Go templates, one stylesheet, one script).
//
//go:embed console/templates/*.html console/static/*
var consoleFiles embed.FS

// consoleCookie carries the operator's API key or token in the browser
// (HttpOnly, SameSite=Strict, path /console): the console's pages take it
// as the x-api-key header, so they are behind the same tokens as /v1.
const consoleCookie = "cdnflow_console"

var consoleTemplates = template.Must(template.New("console").Funcs(template.FuncMap{
	"ago":     ago,
	"took":    func(from, to time.Time) string { return to.Sub(from).Round(10 * time.Millisecond).String() },
	"applied": appliedCell,
	"join":    strings.Join,
	"pathesc": url.PathEscape,
}).ParseFS(consoleFiles, "console/templates/*.html"))

// routesConsole serves the operator console (docs/console.md): /console
// (the fleet), /console/distributions/{domain}?appKey=K (versions,
// rollout, per-edge state, live traffic), /console/jobs and
// /console/jobs/{workflow id}; /console/login keeps a key or token in a
// cookie; /console/static/ the stylesheet and script.
func (s *Server) routesConsole(e *echo.Echo) {
	static, _ := fs.Sub(consoleFiles, "console/static")
	e.GET("/console/static/*", echo.WrapHandler(http.StripPrefix("/console/static/", http.FileServer(http.FS(static)))))
	e.GET("/console/login", s.consoleLoginPage)
	e.POST("/console/login", s.consoleLogin, sameOriginOnly)
	e.POST("/console/logout", s.consoleLogout, sameOriginOnly)
	g := e.Group("/console", s.consoleAuth)
	g.GET("", s.consoleFleet)
	g.GET("/jobs", s.consoleJobs)
	g.GET("/jobs/:id", s.consoleJob)
	g.GET("/distributions/:domain", s.consoleDistribution)
	g.GET("/distributions/:domain/traffic", s.consoleTraffic)
}

// consoleAuth authenticates console requests like /v1 ones, the cookie
// standing in for a missing x-api-key. A browser that is refused is sent
// to the login page; other clients get the /v1 JSON error.
func (s *Server) consoleAuth(next echo.HandlerFunc) echo.HandlerFunc {
	auth := s.authenticate(next)
	return func(c echo.Context) error {
		r := c.Request()
		if ck, err := r.Cookie(consoleCookie); err == nil && r.Header.Get("x-api-key") == "" && ck.Value != "" {
			r.Header.Set("x-api-key", ck.Value)
		}
		sent := r.Header.Get("x-api-key") != "" || r.Header.Get("Authorization") != ""
		err := auth(c)
		var ae *APIError
		if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) &&
			strings.Contains(r.Header.Get("Accept"), "text/html") {
			to := "/console/login?next=" + url.QueryEscape(r.URL.RequestURI())
			if sent { // a credential was refused; none sent is a first visit
				to += "&refused=1"
			}
			return c.Redirect(http.StatusSeeOther, to)
		}
		return err
	}
}

func (s *Server) consoleLoginPage(c echo.Context) error {
	return s.render(c, http.StatusOK, "login", map[string]any{
		"Title": "Sign in", "Next": safeNext(c.QueryParam("next")), "Refused": c.QueryParam("refused") != "",
	})
}

// consoleLogin keeps the key or token posted (form field "key") in the
// console cookie; whether it is valid shows on the next page.
func (s *Server) consoleLogin(c echo.Context) error {
	r := c.Request()
	err := r.ParseForm()
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		_, err = io.Copy(io.Discard, r.Body) // read (within the route's limit) to tell a body too large
	}
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return errTooLarge(mbe.Limit)
	}
	key := strings.TrimSpace(c.FormValue("key"))
	if key == "" || len(key) > 512 {
		return s.render(c, http.StatusBadRequest, "login", map[string]any{"Title": "Sign in", "Next": safeNext(c.FormValue("next")), "Refused": true})
	}
	c.SetCookie(&http.Cookie{Name: consoleCookie, Value: key, Path: "/console", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.Request().TLS != nil, MaxAge: 12 * 3600})
	return c.Redirect(http.StatusSeeOther, safeNext(c.FormValue("next")))
}

func (s *Server) consoleLogout(c echo.Context) error {
	c.SetCookie(&http.Cookie{Name: consoleCookie, Value: "", Path: "/console", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	return c.Redirect(http.StatusSeeOther, "/console/login")
}

// sameOriginOnly refuses (403) a console form posted from another site
// (login CSRF, a forced logout): the Origin must be the console's own
// (scheme://host as requested); without an Origin, Sec-Fetch-Site must be
// same-origin or absent and a Referer, if any, of the same origin
// (OWASP CSRF Prevention Cheat Sheet, "Verifying Origin With Standard
// Headers"; Fetch Metadata, W3C).
func sameOriginOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		own := c.Scheme() + "://" + r.Host
		if o := r.Header.Get("Origin"); o != "" {
			if o != own {
				return forbidden("cross-site console form (Origin " + o + ")")
			}
			return next(c)
		}
		if f := r.Header.Get("Sec-Fetch-Site"); f != "" && f != "same-origin" {
			return forbidden("cross-site console form (Sec-Fetch-Site " + f + ")")
		}
		if ref := r.Header.Get("Referer"); ref != "" {
			if u, err := url.Parse(ref); err != nil || u.Scheme+"://"+u.Host != own {
				return forbidden("cross-site console form (Referer)")
			}
		}
		return next(c)
	}
}

// safeNext keeps redirects inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/console"
	}
	return next
}

func (s *Server) consoleFleet(c echo.Context) error {
	f, err := s.svc().Fleet(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "fleet", map[string]any{"Title": "Fleet", "Nav": "fleet", "Fleet": f})
}

func (s *Server) consoleDistribution(c echo.Context) error {
	ctx := c.Request().Context()
	appKey, domain := c.QueryParam("appKey"), strings.ToLower(c.Param("domain"))
	st, err := s.svc().DistributionByDomain(ctx, appKey, domain)
	if err != nil {
		return about("distribution "+domain, err)
	}
	versions, err := s.svc().ListVersions(ctx, appKey, domain)
	if err != nil {
		return about("distribution "+domain, err)
	}
	f, err := s.svc().Fleet(ctx)
	if err != nil {
		return err
	}
	var fd service.FleetDistribution
	for _, d := range f.Distributions {
		if d.AppKey == appKey && d.Domain == domain {
			fd = d
		}
	}
	return s.render(c, http.StatusOK, "distribution", map[string]any{
		"Title": domain, "Nav": "fleet", "State": st, "Versions": versions, "Fleet": f, "D": fd,
		"TrafficURL": "/console/distributions/" + url.PathEscape(domain) + "/traffic?appKey=" + url.QueryEscape(appKey),
		"Temporal":   s.temporalLink(workflows.DistributionWorkflowID(appKey, domain), ""),
	})
}

// consoleTraffic is the live traffic of one distribution for the chart:
// service.Traffic of the last two minutes at 1 s.
func (s *Server) consoleTraffic(c echo.Context) error {
	// No query of the distribution's workflow: this is read every second
	// per open page, and the edges know their sites.
	ctx := c.Request().Context()
	domain := strings.ToLower(c.Param("domain"))
	v, err := s.svc().Traffic(ctx, service.TrafficQuery{Distribution: domain, Step: "1s", Since: time.Now().Add(-2 * time.Minute).Unix()})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) consoleJobs(c echo.Context) error {
	jobs, err := s.svc().Jobs(c.Request().Context())
	if err != nil {
		return err
	}
	links := map[string]string{}
	for _, j := range jobs {
		links[j.WorkflowID] = s.temporalLink(j.WorkflowID, j.RunID)
	}
	return s.render(c, http.StatusOK, "jobs", map[string]any{"Title": "Jobs", "Nav": "jobs", "Jobs": jobs, "Links": links})
}

func (s *Server) consoleJob(c echo.Context) error {
	j, err := s.svc().Job(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "job", map[string]any{"Title": j.Kind + " " + j.WorkflowID, "Nav": "jobs", "Job": j,
		"Temporal": s.temporalLink(j.WorkflowID, j.RunID)})
}

// temporalLink is the job's page in the Temporal Web UI, or "" when no
// UI is configured (--console-temporal-ui).
func (s *Server) temporalLink(workflowID, runID string) string {
	base := strings.TrimSuffix(s.d.Config.ConsoleTemporalUI, "/")
	if base == "" {
		return ""
	}
	u := base + "/namespaces/" + url.PathEscape(s.d.Config.Namespace) + "/workflows/" + url.PathEscape(workflowID)
	if runID != "" {
		u += "/" + url.PathEscape(runID) + "/history"
	}
	return u
}

// render writes template name (inside the layout) as the page.
func (s *Server) render(c echo.Context, code int, name string, data map[string]any) error {
	var b bytes.Buffer
	data["Page"] = name
	if err := consoleTemplates.ExecuteTemplate(&b, name, data); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	return c.HTMLBlob(code, b.Bytes())
}

// ago renders a time as how long ago, to the second.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// appliedCell is one fleet cell: the version edge e holds of
// distribution d, and how it compares with what d last applied.
type fleetCell struct {
	Text, Class, Label string
}

func appliedCell(e service.FleetEdge, d service.FleetDistribution) fleetCell {
	v, ok := e.Applied[d.Domain]
	switch {
	case e.Error != "":
		return fleetCell{"?", "unknown", "edge did not answer"}
	case !ok:
		if d.Status == distribution.StatusSuspend || d.Applied == 0 {
			return fleetCell{"–", "none", "not on this edge"}
		}
		return fleetCell{"missing", "bad", "missing on this edge"}
	case e.Suspended[d.Domain]:
		return fleetCell{"v" + strconv.Itoa(v) + " ⏸", "ok", "version " + strconv.Itoa(v) + ", suspended"}
	case v < d.Applied:
		return fleetCell{"v" + strconv.Itoa(v), "behind", "version " + strconv.Itoa(v) + ", behind version " + strconv.Itoa(d.Applied)}
	}
	return fleetCell{"v" + strconv.Itoa(v), "ok", "version " + strconv.Itoa(v) + ", as applied"}
}
