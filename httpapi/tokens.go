package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

// API tokens: POST /v1/tokens creates one (its secret is in this answer
// only), GET lists them, DELETE /v1/tokens/{id} revokes one. Admin on
// every appKey.
func (s *Server) routesTokens(e *echo.Echo) {
	g := e.Group("/v1/tokens", s.authenticate)
	g.POST("", s.createToken)
	g.GET("", s.listTokens)
	g.DELETE("/:id", s.revokeToken)
}

// createdToken is POST /v1/tokens's answer: the token's view and, once,
// the token itself.
type createdToken struct {
	service.TokenView
	Token string `json:"token"`
}

func (s *Server) createToken(c echo.Context) error {
	var req service.TokenRequest
	if err := bind(c, &req, `JSON with name, verbs, appKeys and expiresIn`); err != nil {
		return err
	}
	v, tok, err := s.svc().CreateToken(c.Request().Context(), req)
	if err != nil {
		return err
	}
	s.tokens.invalidate()
	return c.JSON(http.StatusCreated, createdToken{TokenView: v, Token: tok})
}

func (s *Server) listTokens(c echo.Context) error {
	list, err := s.svc().ListTokens(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"tokens": list})
}

func (s *Server) revokeToken(c echo.Context) error {
	if err := s.svc().RevokeToken(c.Request().Context(), c.Param("id")); err != nil {
		return about("token "+c.Param("id"), err)
	}
	s.tokens.invalidate()
	return c.NoContent(http.StatusNoContent)
}

// tokenCache is this API's copy of the token table, read from the
// TokensWorkflow's memo at most every ttl: a revocation on any API takes
// effect here within ttl. An id it does not know makes it read again, at
// most every tokenMissRefresh, so a token created on another API works
// at once.
type tokenCache struct {
	ttl  time.Duration
	load func(context.Context) ([]workflows.TokenRecord, error)
	now  func() time.Time

	mu   sync.Mutex
	at   time.Time
	byID map[string]workflows.TokenRecord
}

const tokenMissRefresh = 500 * time.Millisecond

func newTokenCache(ttl time.Duration, load func(context.Context) ([]workflows.TokenRecord, error)) *tokenCache {
	return &tokenCache{ttl: ttl, load: load, now: time.Now}
}

// lookup answers token id's record; found is false for an id the table
// does not hold. Errors are the table's (Temporal unreachable).
func (tc *tokenCache) lookup(ctx context.Context, id string) (workflows.TokenRecord, bool, error) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	age := tc.now().Sub(tc.at)
	if tc.byID == nil || age >= tc.ttl {
		if err := tc.refresh(ctx); err != nil {
			return workflows.TokenRecord{}, false, err
		}
	}
	r, ok := tc.byID[id]
	if !ok && tc.now().Sub(tc.at) >= tokenMissRefresh {
		if err := tc.refresh(ctx); err != nil {
			return workflows.TokenRecord{}, false, err
		}
		r, ok = tc.byID[id]
	}
	return r, ok, nil
}

func (tc *tokenCache) refresh(ctx context.Context) error {
	recs, err := tc.load(ctx)
	if err != nil {
		return &APIError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the token table does not answer; retry later"}
	}
	tc.byID = make(map[string]workflows.TokenRecord, len(recs))
	for _, r := range recs {
		tc.byID[r.ID] = r
	}
	tc.at = tc.now()
	return nil
}

// invalidate makes the next lookup read the table (this API's own
// creates and revokes apply at once).
func (tc *tokenCache) invalidate() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.byID = nil
}
