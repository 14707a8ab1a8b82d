package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
)

// scope is where a route's verb must hold.
type scope int

const (
	// onPathAppKey: the verb on the path's appKey.
	onPathAppKey scope = iota
	// inService: the verb on some appKey here; the service checks it on
	// the appKey the body or the job belongs to (service.authorize).
	inService
	// onEveryAppKey: the verb on every appKey (what belongs to no
	// tenant: the edges, the tokens).
	onEveryAppKey
)

type routeRule struct {
	verb  string
	scope scope
}

// routeRules maps every authenticated route ("METHOD path" as Echo
// registers it) to its verb and scope (docs/operations.md, "Tokens,
// scopes and audit"). A route missing here is refused to everyone, and
// TestEveryRouteHasAScope fails.
var routeRules = map[string]routeRule{
	"POST /prewarm":            {service.VerbPrewarm, inService},
	"GET /status":              {service.VerbRead, inService},
	"GET /prewarm/:id":         {service.VerbRead, inService},
	"GET /prewarm/:id/edges":   {service.VerbRead, inService},
	"GET /v1/edges":            {service.VerbAdmin, onEveryAppKey},
	"POST /v1/edges/check":     {service.VerbAdmin, onEveryAppKey},
	"GET /v1/edges/check/:id":  {service.VerbAdmin, onEveryAppKey},
	"POST /v1/tokens":          {service.VerbAdmin, onEveryAppKey},
	"GET /v1/tokens":           {service.VerbAdmin, onEveryAppKey},
	"DELETE /v1/tokens/:id":    {service.VerbAdmin, onEveryAppKey},
	"GET /v1/audit":            {service.VerbRead, inService},
	"POST /v1/schedules":       {service.VerbSchedule, inService},
	"GET /v1/schedules":        {service.VerbRead, inService},
	"GET /v1/schedules/:id":    {service.VerbRead, inService},
	"DELETE /v1/schedules/:id": {service.VerbSchedule, inService},

	// Live traffic and the operator console (traffic.go, console.go) show
	// every tenant's distributions and jobs.
	"GET /v1/traffic":                            {service.VerbRead, onEveryAppKey},
	"GET /console":                               {service.VerbRead, onEveryAppKey},
	"GET /console/jobs":                          {service.VerbRead, onEveryAppKey},
	"GET /console/jobs/:id":                      {service.VerbRead, onEveryAppKey},
	"GET /console/distributions/:domain":         {service.VerbRead, onEveryAppKey},
	"GET /console/distributions/:domain/traffic": {service.VerbRead, onEveryAppKey},

	"POST /v1/schedules/:id/pause":   {service.VerbSchedule, inService},
	"POST /v1/schedules/:id/unpause": {service.VerbSchedule, inService},
	"POST /v1/schedules/:id/trigger": {service.VerbSchedule, inService},

	"POST /v1.5/appKeys/:appKey/purges":                           {service.VerbPurge, onPathAppKey},
	"GET /v1.5/appKeys/:appKey/purges":                            {service.VerbRead, onPathAppKey},
	"POST /v1.5/appKeys/:appKey/distributions":                    {service.VerbAdmin, onPathAppKey},
	"GET /v1.5/appKeys/:appKey/distributions":                     {service.VerbRead, onPathAppKey},
	"PUT /v1.5/appKeys/:appKey/distributions":                     {service.VerbAdmin, onPathAppKey},
	"PATCH /v1.5/appKeys/:appKey/distributions":                   {service.VerbAdmin, onPathAppKey},
	"DELETE /v1.5/appKeys/:appKey/distributions":                  {service.VerbAdmin, onPathAppKey},
	"PUT /v1.5/appKeys/:appKey/distributions/suspend":             {service.VerbAdmin, onPathAppKey},
	"PUT /v1.5/appKeys/:appKey/distributions/resume":              {service.VerbAdmin, onPathAppKey},
	"GET /v1/appKeys/:appKey/distributions/:domain":               {service.VerbRead, onPathAppKey},
	"PATCH /v1/appKeys/:appKey/distributions/:domain":             {service.VerbAdmin, onPathAppKey},
	"GET /v1/appKeys/:appKey/distributions/:domain/versions":      {service.VerbRead, onPathAppKey},
	"GET /v1/appKeys/:appKey/distributions/:domain/versions/diff": {service.VerbRead, onPathAppKey},
	"GET /v1/appKeys/:appKey/distributions/:domain/versions/:n":   {service.VerbRead, onPathAppKey},
	"POST /v1/appKeys/:appKey/distributions/:domain/rollback":     {service.VerbAdmin, onPathAppKey},

	// Webhook subscriptions: the appKey is the body's or the query's,
	// checked by the service (admin to change, read to look).
	"POST /v1/webhooks":               {service.VerbAdmin, inService},
	"GET /v1/webhooks":                {service.VerbRead, inService},
	"DELETE /v1/webhooks/:id":         {service.VerbAdmin, inService},
	"GET /v1/webhooks/:id/deliveries": {service.VerbRead, inService},
	// Releases (release.go): a release purges, so starting or cancelling
	// one needs purge; the service checks prewarm too when it prewarms.
	"POST /v1/releases":                   {service.VerbPurge, inService},
	"GET /v1/releases/:id":                {service.VerbRead, inService},
	"POST /v1/releases/:id/cancel":        {service.VerbPurge, inService},
	"GET /v1/releases/:id/events":         {service.VerbRead, inService},
	"GET /v1/appKeys/:appKey/purges/:seq": {service.VerbRead, onPathAppKey},
}

// RouteVerb answers the verb of a route ("METHOD path" as Echo registers
// it); ok is false for a route without a rule.
func RouteVerb(method, path string) (string, bool) {
	r, ok := routeRules[method+" "+path]
	return r.verb, ok
}

// requireAPIKey and requireAppKey guard route groups; both are
// authenticate: the credential a route accepts follows from its path.
func (s *Server) requireAPIKey(next echo.HandlerFunc) echo.HandlerFunc { return s.authenticate(next) }
func (s *Server) requireAppKey(next echo.HandlerFunc) echo.HandlerFunc { return s.authenticate(next) }

// authenticate finds the request's credential, checks the route's verb
// and scope, and puts the service.Caller and service.Grant in the
// request context. Credentials, by route:
//   - x-api-key (Prewarm API and /v1): a --api-keys key (every verb on
//     every appKey) or a token "cdf_<id>_<secret>";
//   - Authorization (/v1.5 and /v1): a token, as "Bearer <token>" or
//     bare, or on routes with an appKey in the path that appKey's NHN
//     SecretKey (every verb on that appKey only).
//
// Every credential presented must authenticate. Without any, routes
// without an appKey are open (every verb) when no --api-keys are
// configured (dev, or `cdnflow api --insecure-no-auth`). A credential that
// does not authenticate is 401 on appKey routes, 403 elsewhere (NHN 10003
// on /v1.5); one that lacks the scope is 403.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rule, known := routeRules[c.Request().Method+" "+c.Path()]
		appKey := c.Param("appKey")
		keyID, grant, err := s.credential(c, appKey)
		caller := service.Caller{KeyID: keyID, RequestID: requestIDOf(c), AppKey: appKey}
		ctx := service.WithCaller(c.Request().Context(), caller)
		if err == nil {
			ctx = service.WithGrant(ctx, grant)
		}
		c.SetRequest(c.Request().WithContext(ctx))
		if err != nil {
			return err
		}
		if !known {
			return forbidden("this route has no scope rule; no credential may call it")
		}
		if _, configured := s.d.Config.AppKeys[appKey]; appKey != "" && !configured {
			// Tenants are the configured appKeys: a token on every appKey
			// or an --api-keys key does not make up new ones (which would
			// each get limits, holds and audit entries of their own).
			return &APIError{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "invalid appKey or SecretKey in Authorization"}
		}
		ok := false
		switch rule.scope {
		case onPathAppKey:
			ok = grant.Allows(rule.verb, appKey)
		case inService:
			ok = grant.AllowsAny(rule.verb)
		case onEveryAppKey:
			ok = grant.Allows(rule.verb, "")
		}
		if !ok {
			return forbidden("this credential has no " + rule.verb + " scope for this route")
		}
		return next(c)
	}
}

func forbidden(msg string) *APIError {
	return &APIError{Status: http.StatusForbidden, Code: CodeUnauthorized, Message: msg}
}

// Caller.KeyIDs of requests that carry no usable credential.
const (
	keyAnonymous = "anonymous"
	keyInvalid   = "invalid"
)

// credential answers the key id and grant of the request's credential.
func (s *Server) credential(c echo.Context, appKey string) (string, service.Grant, error) {
	path := c.Path()
	onV1, onNHN := strings.HasPrefix(path, "/v1/"), strings.HasPrefix(path, "/v1.5/")
	refused := &APIError{Status: http.StatusForbidden, Code: CodeUnauthorized, Message: "missing or invalid x-api-key"}
	if appKey != "" {
		refused = &APIError{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "invalid appKey or SecretKey in Authorization"}
	}
	authz, xkey := "", ""
	if onV1 || onNHN {
		authz = c.Request().Header.Get("Authorization")
	}
	if !onNHN {
		xkey = c.Request().Header.Get("x-api-key")
	}
	var ids []string
	var grants []service.Grant
	if authz != "" {
		id, g, ok, err := s.authorizationCredential(c, authz, appKey)
		if err != nil {
			return id, g, err
		}
		if !ok {
			return id, g, refused
		}
		ids, grants = append(ids, id), append(grants, g)
	}
	if xkey != "" {
		id, g, ok, err := s.apiKeyCredential(c, xkey)
		if err != nil {
			return id, g, err
		}
		if !ok {
			return id, g, refused
		}
		ids, grants = append(ids, id), append(grants, g)
	}
	switch {
	case len(ids) > 0:
		// Both headers authenticated: the first (Authorization) speaks.
		return ids[0], grants[0], nil
	case appKey == "" && len(s.d.Config.APIKeys) == 0:
		return keyAnonymous, service.FullGrant(), nil
	}
	return keyAnonymous, service.Grant{}, refused
}

// authorizationCredential reads Authorization: a token (Bearer or bare)
// or the path appKey's SecretKey. ok is false when it does not
// authenticate; the id is then keyInvalid.
func (s *Server) authorizationCredential(c echo.Context, authz, appKey string) (string, service.Grant, bool, error) {
	tok, bearer := cutPrefixFold(authz, "Bearer ")
	if _, _, isToken := service.ParseToken(tok); isToken || bearer {
		return s.tokenCredential(c, tok)
	}
	if appKey == "" {
		return keyInvalid, service.Grant{}, false, nil
	}
	secret, known := s.d.Config.AppKeys[appKey]
	if !known {
		secret = "\x00unknown-app-key" // still compare, to keep timing flat
	}
	if subtle.ConstantTimeCompare([]byte(authz), []byte(secret)) != 1 || !known {
		return keyInvalid, service.Grant{}, false, nil
	}
	return appKey, service.Grant{Verbs: service.Verbs, AppKeys: []string{appKey}}, true, nil
}

// apiKeyCredential reads x-api-key: a token or a --api-keys key.
func (s *Server) apiKeyCredential(c echo.Context, key string) (string, service.Grant, bool, error) {
	if _, _, isToken := service.ParseToken(key); isToken {
		return s.tokenCredential(c, key)
	}
	if len(s.d.Config.APIKeys) > 0 && matchesAny(key, s.d.Config.APIKeys) {
		return apiKeyID(key), service.FullGrant(), true, nil
	}
	return keyInvalid, service.Grant{}, false, nil
}

// tokenCredential checks a token against the token table (cached).
func (s *Server) tokenCredential(c echo.Context, tok string) (string, service.Grant, bool, error) {
	id, secret, ok := service.ParseToken(tok)
	if !ok {
		return keyInvalid, service.Grant{}, false, nil
	}
	rec, found, err := s.tokens.lookup(c.Request().Context(), id)
	if err != nil {
		return keyInvalid, service.Grant{}, false, err
	}
	if !found {
		return keyInvalid, service.Grant{}, false, nil
	}
	g, ok := service.TokenGrant(rec, secret, s.tokens.now())
	if !ok {
		// A token id is not secret: a forged secret must not put records
		// under the real token's id in the audit trail.
		return keyInvalid, service.Grant{}, false, nil
	}
	return id, g, true, nil
}

// apiKeyID names a --api-keys key without revealing it:
// "apikey:<first 8 hex of its SHA-256>".
func apiKeyID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "apikey:" + hex.EncodeToString(sum[:4])
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return strings.TrimSpace(s[len(prefix):]), true
	}
	return s, false
}

// requestIDOf is the request id the RequestID middleware gave the request
// (the caller's X-Request-Id when it sent one), cut to
// maxRecordedRequestID bytes: versions and audit records keep it.
func requestIDOf(c echo.Context) string {
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	if len(rid) > maxRecordedRequestID {
		rid = rid[:maxRecordedRequestID]
	}
	return rid
}

// matchesAny compares against every key, always, in constant time per key,
// so timing reveals neither a key nor which one matched.
func matchesAny(got string, keys []string) bool {
	ok := 0
	for _, k := range keys {
		ok |= subtle.ConstantTimeCompare([]byte(got), []byte(k))
	}
	return ok == 1
}
