package service

import "context"

// Caller is who sent a request, as the API's authentication found it: the
// one identity that versions record and that idempotency keys, per-tenant
// limits and the audit trail are scoped to. The httpapi authentication
// middleware puts it in the request context (WithCaller); service functions
// read it with CallerFrom or take it as an argument.
type Caller struct {
	// KeyID names the credential, never its secret: a token id ("tok_…"),
	// "apikey:<first 8 hex of SHA-256 of the key>" for a configured
	// x-api-key, the appKey for an NHN SecretKey, or "anonymous" when no
	// key is configured (dev only).
	KeyID string
	// RequestID is the API's request id (X-Request-Id).
	RequestID string
	// AppKey is the tenant of the route (the path's appKey on /v1.5 and
	// /v1/appKeys/…); empty on operator routes such as /prewarm.
	AppKey string
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the Caller of ctx, or Caller{KeyID: "anonymous"} when
// the request was not authenticated (dev without keys, tests calling
// service functions directly).
func CallerFrom(ctx context.Context) Caller {
	if c, ok := ctx.Value(callerKey{}).(Caller); ok {
		return c
	}
	return Caller{KeyID: "anonymous"}
}
