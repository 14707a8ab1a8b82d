package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/cdnflow/cdnflow/workflows"
)

// Verbs a credential may be granted (docs/operations.md, "Tokens, scopes
// and audit"). Admin implies every other verb on its appKeys; admin on
// every appKey ("*") also manages tokens, reads the audit trail of all
// appKeys and the edges.
const (
	VerbPrewarm  = "prewarm"
	VerbPurge    = "purge"
	VerbRead     = "read"
	VerbSchedule = "schedule"
	VerbAdmin    = "admin"
)

// Verbs lists every verb, in the order the docs give them.
var Verbs = []string{VerbPrewarm, VerbPurge, VerbRead, VerbSchedule, VerbAdmin}

// ErrForbidden means the caller's credential is valid but its scope does
// not cover the action (403, NHN 10003).
var ErrForbidden = errors.New("forbidden")

// Grant is what the request's credential may do: Verbs on AppKeys, or on
// every appKey with AllAppKeys.
type Grant struct {
	Verbs      []string
	AppKeys    []string
	AllAppKeys bool
}

// FullGrant is every verb on every appKey: a configured --api-keys key, or
// the anonymous caller of an API started without keys.
func FullGrant() Grant { return Grant{Verbs: []string{VerbAdmin}, AllAppKeys: true} }

func (g Grant) hasVerb(verb string) bool {
	return slices.Contains(g.Verbs, verb) || slices.Contains(g.Verbs, VerbAdmin)
}

// Allows reports whether g covers verb on appKey; appKey "" is what
// belongs to no appKey (the edges, tokens, a host served by the default
// origin), which only a grant on every appKey covers.
func (g Grant) Allows(verb, appKey string) bool {
	if !g.hasVerb(verb) {
		return false
	}
	if g.AllAppKeys {
		return true
	}
	return appKey != "" && slices.Contains(g.AppKeys, appKey)
}

// AllowsAny reports whether g has verb on at least one appKey: the check
// of a route whose appKey the service finds in the body.
func (g Grant) AllowsAny(verb string) bool {
	return g.hasVerb(verb) && (g.AllAppKeys || len(g.AppKeys) > 0)
}

// ReadableAppKeys answers the appKeys g may read (all: nil, true).
func (g Grant) ReadableAppKeys() ([]string, bool) {
	if g.AllAppKeys && g.hasVerb(VerbRead) {
		return nil, true
	}
	if !g.hasVerb(VerbRead) {
		return nil, false
	}
	return g.AppKeys, false
}

type grantKey struct{}

// WithGrant returns ctx carrying the request's Grant (the httpapi
// authentication middleware sets it).
func WithGrant(ctx context.Context, g Grant) context.Context {
	return context.WithValue(ctx, grantKey{}, g)
}

// GrantFrom answers the Grant of ctx; ok is false for internal callers
// (a schedule's run on the worker, checked when the schedule was
// created).
func GrantFrom(ctx context.Context) (Grant, bool) {
	g, ok := ctx.Value(grantKey{}).(Grant)
	return g, ok
}

// authorize checks that ctx's caller may do verb on appKey ("" : on what
// belongs to no appKey) and notes appKey for the request's audit record.
// Internal callers (no Grant) may. Errors: ErrForbidden, wrapped with the
// verb and appKey.
func authorize(ctx context.Context, verb, appKey string) error {
	noteAuditAppKey(ctx, appKey)
	g, ok := GrantFrom(ctx)
	if !ok || g.Allows(verb, appKey) {
		return nil
	}
	what := "appKey " + appKey
	if appKey == "" {
		what = "every appKey (the target belongs to none)"
	}
	return fmt.Errorf("%w: this credential has no %s scope on %s", ErrForbidden, verb, what)
}

// authorizePrewarm checks a prewarm of a host of appKey ("" : served by
// the default origin): prewarm scope on it, and purge scope too with
// need_invalidate (the job purges before it warms).
func authorizePrewarm(ctx context.Context, appKey string, invalidate bool) error {
	if err := authorize(ctx, VerbPrewarm, appKey); err != nil {
		return err
	}
	if invalidate {
		return authorize(ctx, VerbPurge, appKey)
	}
	return nil
}

// NeedsPrewarmReadCheck tells whether ctx's caller can read only some
// appKeys, so a prewarm job's read must be checked against the appKey
// its domain belongs to (AuthorizePrewarmRead).
func NeedsPrewarmReadCheck(ctx context.Context) bool {
	g, ok := GrantFrom(ctx)
	return ok && !g.Allows(VerbRead, "")
}

// AuthorizePrewarmRead checks read scope on the appKey a prewarm job was
// started for (its CdnflowAppKey search attribute, fixed at the start):
// a host that changed owner since does not hand the job to its new owner.
// A job of no appKey (the default origin's, a caller-keyed tenant "key:…")
// needs read on every appKey. Errors: ErrNotFound, ErrForbidden, or
// Temporal's.
func (s *Service) AuthorizePrewarmRead(ctx context.Context, requestID string) error {
	if !NeedsPrewarmReadCheck(ctx) {
		return nil
	}
	if !validRequestID(requestID) {
		return ErrNotFound
	}
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.PrewarmWorkflowID(requestID), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("describe prewarm %s: %w", requestID, err)
	}
	var appKey string
	if p := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[workflows.AppKeyAttr.GetName()]; p != nil {
		if err := converter.GetDefaultDataConverter().FromPayload(p, &appKey); err != nil {
			return fmt.Errorf("prewarm %s appKey: %w", requestID, err)
		}
	}
	if strings.Contains(appKey, ":") {
		appKey = ""
	}
	return authorize(ctx, VerbRead, appKey)
}

// TokenPrefix starts every token: "cdf_<id>_<secret>", the id
// workflows.ValidTokenID's shape, the secret 64 hex digits (32 random
// bytes).
const TokenPrefix = "cdf_"

// MaxTokenTTL bounds a token's life; DefaultTokenTTL is a token's life
// when the request names none.
const (
	MaxTokenTTL     = 366 * 24 * time.Hour
	DefaultTokenTTL = 90 * 24 * time.Hour
	maxTokenAppKeys = 64
)

// TokenRequest creates a token: a name (1-128 printable characters),
// verbs (Verbs), appKeys (["*"] for every appKey) and a life (a Go
// duration, at most MaxTokenTTL; "" is DefaultTokenTTL).
type TokenRequest struct {
	Name      string   `json:"name"`
	Verbs     []string `json:"verbs"`
	AppKeys   []string `json:"appKeys"`
	ExpiresIn string   `json:"expiresIn,omitempty"`
}

// TokenView is a token as listed: never its secret nor its hash.
type TokenView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Verbs     []string  `json:"verbs"`
	AppKeys   []string  `json:"appKeys"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	CreatedBy string    `json:"createdBy,omitempty"`
}

var (
	tokenNameRe   = regexp.MustCompile(`^[[:print:]]{1,128}$`)
	tokenAppKeyRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// tokenRecord checks req and builds its record; now is the creation time.
func tokenRecord(req TokenRequest, now time.Time) (workflows.TokenRecord, error) {
	r := workflows.TokenRecord{Name: req.Name, Created: now.UTC()}
	if !tokenNameRe.MatchString(req.Name) {
		return r, invalid("name must be 1-128 printable characters")
	}
	if len(req.Verbs) == 0 {
		return r, invalid("verbs must list at least one of %s", strings.Join(Verbs, ", "))
	}
	for _, v := range req.Verbs {
		if !slices.Contains(Verbs, v) {
			return r, invalid("unknown verb %q: use %s", v, strings.Join(Verbs, ", "))
		}
		if !slices.Contains(r.Verbs, v) {
			r.Verbs = append(r.Verbs, v)
		}
	}
	if len(req.AppKeys) == 0 || len(req.AppKeys) > maxTokenAppKeys {
		return r, invalid("appKeys must list 1 to %d appKeys, or [\"*\"] for every appKey", maxTokenAppKeys)
	}
	for _, k := range req.AppKeys {
		switch {
		case k == "*":
			r.AllAppKeys = true
		case !tokenAppKeyRe.MatchString(k):
			return r, invalid("appKey %q: 1-64 of A-Z a-z 0-9 _ . -", k)
		case !slices.Contains(r.AppKeys, k):
			r.AppKeys = append(r.AppKeys, k)
		}
	}
	if r.AllAppKeys {
		r.AppKeys = nil
	}
	ttl := DefaultTokenTTL
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 || d > MaxTokenTTL {
			return r, invalid("expiresIn must be a Go duration from 1s to %s (e.g. \"720h\")", MaxTokenTTL)
		}
		ttl = d
	}
	r.Expires = r.Created.Add(ttl)
	return r, nil
}

// CreateToken stores a new token for req and answers it with its secret
// token string, which is shown this once: only its SHA-256 is kept.
// Errors: *ValidationError; ErrTooMany-like refusals of a full table are
// ValidationErrors too; others are Temporal's.
func (s *Service) CreateToken(ctx context.Context, req TokenRequest) (TokenView, string, error) {
	r, err := tokenRecord(req, time.Now())
	if err != nil {
		return TokenView{}, "", err
	}
	for _, k := range r.AppKeys {
		if _, ok := s.config.AppKeys[k]; !ok && k != "*" {
			return TokenView{}, "", invalid("appKeys: %q is not a configured appKey", k)
		}
	}
	var id, secret [32]byte
	if _, err := rand.Read(id[:8]); err != nil {
		return TokenView{}, "", fmt.Errorf("token id: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return TokenView{}, "", fmt.Errorf("token secret: %w", err)
	}
	r.ID = "tok_" + hex.EncodeToString(id[:8])
	sec := hex.EncodeToString(secret[:])
	r.Hash = HashTokenSecret(sec)
	r.CreatedBy = CallerFrom(ctx).KeyID
	if err := s.updateTokens(ctx, workflows.UpdateTokenCreate, r); err != nil {
		return TokenView{}, "", err
	}
	return viewToken(r), TokenPrefix + r.ID + "_" + sec, nil
}

// RevokeToken removes token id from the table; every API stops taking it
// within its cache's life. Errors: ErrNotFound for an unknown id.
func (s *Service) RevokeToken(ctx context.Context, id string) error {
	if !workflows.ValidTokenID(id) {
		return fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return s.updateTokens(ctx, workflows.UpdateTokenRevoke, id)
}

func (s *Service) updateTokens(ctx context.Context, update string, arg any) error {
	start := s.temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.TokensWorkflowID,
		TaskQueue:                s.config.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Memo:                     map[string]any{workflows.MemoTokens: []workflows.TokenRecord{}},
	}, workflows.TokensWorkflow, workflows.TokenTable{})
	h, err := s.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID: workflows.TokensWorkflowID, UpdateName: update, Args: []any{arg},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrUnknownToken:
		return fmt.Errorf("token: %w", ErrNotFound)
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrTokenTableFull:
		return invalid("%s", appErr.Message())
	case err != nil:
		return fmt.Errorf("token table %s: %w", update, err)
	}
	return nil
}

// TokenTable reads every stored token from the table's memo (a describe:
// no worker needed). No table yet is an empty one.
func (s *Service) TokenTable(ctx context.Context) ([]workflows.TokenRecord, error) {
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.TokensWorkflowID, "")
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token table: describe: %w", err)
	}
	var out []workflows.TokenRecord
	p, ok := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[workflows.MemoTokens]
	if !ok {
		return nil, nil
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &out); err != nil {
		return nil, fmt.Errorf("token table: memo: %w", err)
	}
	return out, nil
}

// ListTokens answers the live tokens, without secrets or hashes.
func (s *Service) ListTokens(ctx context.Context) ([]TokenView, error) {
	recs, err := s.TokenTable(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := []TokenView{}
	for _, r := range recs {
		if r.Expires.After(now) {
			out = append(out, viewToken(r))
		}
	}
	return out, nil
}

func viewToken(r workflows.TokenRecord) TokenView {
	keys := r.AppKeys
	if r.AllAppKeys {
		keys = []string{"*"}
	}
	return TokenView{ID: r.ID, Name: r.Name, Verbs: r.Verbs, AppKeys: keys, Created: r.Created, Expires: r.Expires, CreatedBy: r.CreatedBy}
}

// HashTokenSecret is the stored form of a token secret: SHA-256, hex.
// The secret has 256 random bits, so a plain hash is enough (no salt,
// no stretching: nothing to guess).
func HashTokenSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ParseToken splits "cdf_<id>_<secret>"; ok is false for anything else.
func ParseToken(tok string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(tok, TokenPrefix)
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i < 0 || !workflows.ValidTokenID(rest[:i]) || len(rest[i+1:]) != 64 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// TokenGrant checks secret against r at now: the Grant of a live token
// whose hash matches (in constant time), ok false otherwise.
func TokenGrant(r workflows.TokenRecord, secret string, now time.Time) (Grant, bool) {
	if subtle.ConstantTimeCompare([]byte(HashTokenSecret(secret)), []byte(r.Hash)) != 1 || !r.Expires.After(now) {
		return Grant{}, false
	}
	return Grant{Verbs: r.Verbs, AppKeys: r.AppKeys, AllAppKeys: r.AllAppKeys}, true
}
