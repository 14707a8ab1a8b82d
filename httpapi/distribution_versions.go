package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
)

// cdnflow's /v1 surface of a distribution: its versions, a diff between
// two, rollback, and a PATCH with If-Match. A distribution belongs to an
// appKey, so these routes sit under /v1/appKeys/{appKey} and authenticate
// like /v1.5 (the appKey's SecretKey in Authorization): an appKey sees
// only its own distributions. Errors answer the /v1 envelope (ErrorBody).
func (s *Server) routesDistributionVersions(e *echo.Echo) {
	g := e.Group("/v1/appKeys/:appKey/distributions/:domain", s.requireAppKey)
	g.GET("", s.getDistributionV1)
	g.PATCH("", s.patchDistributionV1)
	g.GET("/versions", s.listVersions)
	g.GET("/versions/diff", s.diffVersions)
	g.GET("/versions/:n", s.getVersion)
	g.POST("/rollback", s.rollbackDistribution)
}

// rollbackBody is POST …/rollback: the version to return to and whether
// to skip the rollout's waves.
type rollbackBody struct {
	Version   int  `json:"version"`
	Immediate bool `json:"immediate"`
}

// GET …/distributions/{domain}: the distribution (NHN fields) and its
// version, which the ETag carries ("<version>").
func (s *Server) getDistributionV1(c echo.Context) error {
	d, err := s.svc().DistributionV1(c.Request().Context(), c.Param("appKey"), c.Param("domain"))
	if err != nil {
		return distributionErr(c, err)
	}
	setETag(c, d.Version)
	return c.JSON(http.StatusOK, d)
}

// PATCH …/distributions/{domain}: NHN's PATCH body, If-Match "<version>"
// (412 when stale), ?dryRun=true answers the plan (200) and changes
// nothing; else 202 with the plan of the accepted change (service.Plan)
// and its version as the ETag. The edges follow: GET shows the status.
func (s *Server) patchDistributionV1(c echo.Context) error {
	ifMatch, dry, err := writeOptionsOf(c)
	if err != nil {
		return err
	}
	var b service.DistributionBody
	if err := bind(c, &b, `JSON with the fields to change (NHN PATCH)`); err != nil {
		return err
	}
	p, err := s.svc().PatchDistribution(c.Request().Context(), c.Param("appKey"), c.Param("domain"), b, ifMatch, dry, callerOf(c))
	if err != nil {
		return distributionErr(c, err)
	}
	return renderPlan(c, p)
}

// POST …/rollback {"version": n, "immediate": false}: a new version equal
// to n, applied like any change; If-Match and ?dryRun=true as for PATCH.
// 400 when n is not kept.
func (s *Server) rollbackDistribution(c echo.Context) error {
	ifMatch, dry, err := writeOptionsOf(c)
	if err != nil {
		return err
	}
	var b rollbackBody
	if err := bind(c, &b, `JSON {"version": 3, "immediate": false}`); err != nil {
		return err
	}
	args := service.RollbackArgs{Version: b.Version, Immediate: b.Immediate, IfMatch: ifMatch, DryRun: dry}
	p, err := s.svc().RollbackDistribution(c.Request().Context(), c.Param("appKey"), c.Param("domain"), args, callerOf(c))
	if err != nil {
		return distributionErr(c, err)
	}
	return renderPlan(c, p)
}

func renderPlan(c echo.Context, p service.Plan) error {
	if p.DryRun {
		return c.JSON(http.StatusOK, p)
	}
	setETag(c, p.Version)
	return c.JSON(http.StatusAccepted, p)
}

// GET …/versions: {"versions": [service.VersionSummary...]}, newest
// first; the ETag is the current version.
func (s *Server) listVersions(c echo.Context) error {
	list, err := s.svc().ListVersions(c.Request().Context(), c.Param("appKey"), c.Param("domain"))
	if err != nil {
		return distributionErr(c, err)
	}
	if len(list) > 0 {
		setETag(c, list[0].N)
	}
	return c.JSON(http.StatusOK, map[string]any{"versions": list})
}

// GET …/versions/{n}: the version with its full config; 404 when not kept.
func (s *Server) getVersion(c echo.Context) error {
	n, err := versionParam("n", c.Param("n"))
	if err != nil {
		return err
	}
	v, err := s.svc().DistributionVersion(c.Request().Context(), c.Param("appKey"), c.Param("domain"), n)
	if err != nil {
		return distributionErr(c, err)
	}
	return c.JSON(http.StatusOK, v)
}

// GET …/versions/diff?from=a&to=b: service.VersionDiff {"from": a, "to":
// b, "diff": [{"path", "from", "to"}...]} (service.DiffConfigs); to
// defaults to the current version.
func (s *Server) diffVersions(c echo.Context) error {
	from, err := versionParam("from", c.QueryParam("from"))
	if err != nil {
		return err
	}
	to := 0
	if q := c.QueryParam("to"); q != "" {
		if to, err = versionParam("to", q); err != nil {
			return err
		}
	}
	diff, err := s.svc().DiffVersions(c.Request().Context(), c.Param("appKey"), c.Param("domain"), from, to)
	if err != nil {
		return distributionErr(c, err)
	}
	return c.JSON(http.StatusOK, diff)
}

// distributionErr answers an unknown domain or version of a /v1 path as
// 404 (in a JSON body it is bad input, see serviceErrors).
func distributionErr(c echo.Context, err error) error {
	switch {
	case errors.Is(err, service.ErrUnknownDomain):
		return &APIError{Status: http.StatusNotFound, Code: CodeNotFound, Message: "appKey " + c.Param("appKey") + " has no distribution " + c.Param("domain")}
	case errors.Is(err, service.ErrNotFound):
		return &APIError{Status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error()}
	}
	return err
}

func versionParam(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badRequest(name + " must be a version number from 1, got " + strconv.Quote(v))
	}
	return n, nil
}

// setETag puts the version in the ETag header: "<version>".
func setETag(c echo.Context, version int) {
	c.Response().Header().Set("ETag", `"`+strconv.Itoa(version)+`"`)
}

// ifMatchOf reads If-Match: a version as an ETag ("3", W/"3") or bare (3);
// absent or * is 0 (any version).
func ifMatchOf(c echo.Context) (int, error) {
	h := strings.TrimSpace(c.Request().Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badRequest(`If-Match must be a version ETag such as "3", got ` + h)
	}
	return n, nil
}

func dryRunOf(c echo.Context) (bool, error) {
	v := c.QueryParam("dryRun")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("dryRun must be true or false, got " + strconv.Quote(v))
	}
	return b, nil
}

// writeOptionsOf reads what every /v1 write takes besides its body: the
// If-Match version (0: any) and ?dryRun.
func writeOptionsOf(c echo.Context) (ifMatch int, dryRun bool, err error) {
	if ifMatch, err = ifMatchOf(c); err != nil {
		return 0, false, err
	}
	if dryRun, err = dryRunOf(c); err != nil {
		return 0, false, err
	}
	return ifMatch, dryRun, nil
}
