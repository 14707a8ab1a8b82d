package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/singleflight"

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
// at once. One read runs at a time (singleflight), outside the lock, so a
// slow Temporal holds up no request that the copy can answer; a failed
// read keeps the copy serving for tokenStaleMax before requests get 503.
type tokenCache struct {
	ttl  time.Duration
	load func(context.Context) ([]workflows.TokenRecord, error)
	now  func() time.Time

	reads singleflight.Group
	mu    sync.Mutex
	at    time.Time // of the copy
	tried time.Time // of the last read, failed or not
	byID  map[string]workflows.TokenRecord
}

const (
	tokenMissRefresh = 500 * time.Millisecond
	// tokenStaleMax bounds how long a copy serves while the table cannot
	// be read: a revocation made meanwhile waits at most this long.
	tokenStaleMax = time.Minute
	// tokenReadTimeout bounds one read of the table.
	tokenReadTimeout = 5 * time.Second
)

func newTokenCache(ttl time.Duration, load func(context.Context) ([]workflows.TokenRecord, error)) *tokenCache {
	return &tokenCache{ttl: ttl, load: load, now: time.Now}
}

// lookup answers token id's record; found is false for an id the table
// does not hold. Errors: 503 when the table cannot be read and this API
// has no copy younger than tokenStaleMax.
func (tc *tokenCache) lookup(ctx context.Context, id string) (workflows.TokenRecord, bool, error) {
	tc.mu.Lock()
	byID, age, sinceTry := tc.byID, tc.now().Sub(tc.at), tc.now().Sub(tc.tried)
	tc.mu.Unlock()
	if byID == nil || (age >= tc.ttl && sinceTry >= tokenMissRefresh) {
		fresh, err := tc.refresh(ctx)
		switch {
		case err == nil:
			byID = fresh
		case byID == nil || age >= tokenStaleMax:
			return workflows.TokenRecord{}, false, err
		}
	}
	r, ok := byID[id]
	tc.mu.Lock()
	sinceTry = tc.now().Sub(tc.tried)
	tc.mu.Unlock()
	if !ok && sinceTry >= tokenMissRefresh {
		if fresh, err := tc.refresh(ctx); err == nil {
			r, ok = fresh[id]
		}
	}
	return r, ok, nil
}

// refresh reads the table once for every caller waiting on it and keeps
// it as the copy.
func (tc *tokenCache) refresh(ctx context.Context) (map[string]workflows.TokenRecord, error) {
	v, err, _ := tc.reads.Do("table", func() (any, error) {
		// Shared by every waiting request: not cancelled with the first
		// one, bounded on its own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenReadTimeout)
		defer cancel()
		recs, err := tc.load(rctx)
		tc.mu.Lock()
		defer tc.mu.Unlock()
		tc.tried = tc.now()
		if err != nil {
			return nil, err
		}
		byID := make(map[string]workflows.TokenRecord, len(recs))
		for _, r := range recs {
			byID[r.ID] = r
		}
		tc.byID, tc.at = byID, tc.tried
		return byID, nil
	})
	if err != nil {
		return nil, &APIError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the token table does not answer; retry later"}
	}
	return v.(map[string]workflows.TokenRecord), nil
}

// invalidate makes the next lookup read the table (this API's own
// creates and revokes apply at once).
func (tc *tokenCache) invalidate() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.byID = nil
}
