package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
)

// adminHost is the Host of site table requests; the edge's VCL routes
// them by connector.HeaderAdmin, never by Host.
const adminHost = "edge-admin.cdnflow"

// Table reads edge e's site table (connector.AdminPath through the edge,
// which admits the purge ACL with the edge's control token only).
func (c *Client) Table(ctx context.Context, e inventory.Edge) (connector.TableState, error) {
	var st connector.TableState
	err := c.admin(ctx, e, http.MethodGet, "", nil, &st)
	return st, err
}

// TableIfDigest reads edge e's site table unless its digest is one of
// known (connector.HeaderIfDigest): then st holds the table's Started,
// Loaded and Digest without its entries, and same is true when that
// digest is want (the table is as desired). An edge whose connector
// predates the header answers the whole table; its Digest decides alike.
func (c *Client) TableIfDigest(ctx context.Context, e inventory.Edge, want string, known ...string) (st connector.TableState, same bool, err error) {
	list := strings.Join(append([]string{want}, known...), ",")
	err = c.adminHeaders(ctx, e, http.MethodGet, "", nil, &st, map[string]string{connector.HeaderIfDigest: list})
	return st, err == nil && want != "" && st.Digest == want, err
}

// PutSite stores s in edge e's site table (older generations are
// ignored: the result says so). force replaces whatever the table holds
// under s.Name (any generation or owner, a closed entry): the control
// plane's desired state winning over drift. A refused site is a
// *StatusError 400.
func (c *Client) PutSite(ctx context.Context, e inventory.Edge, s connector.Site, force bool) (connector.PutResult, error) {
	var res connector.PutResult
	path := url.PathEscape(s.Name)
	if force {
		path += "?force=1"
	}
	err := c.admin(ctx, e, http.MethodPut, path, s, &res)
	return res, err
}

// DeleteSite removes the site name from edge e's table unless it holds a
// newer generation than gen.
func (c *Client) DeleteSite(ctx context.Context, e inventory.Edge, name string, gen connector.Generation) (connector.PutResult, error) {
	var res connector.PutResult
	path := url.PathEscape(name) + "?created=" + strconv.FormatInt(gen.Created, 10) + "&version=" + strconv.Itoa(gen.Version)
	err := c.admin(ctx, e, http.MethodDelete, path, nil, &res)
	return res, err
}

// admin sends one site table request; body and out are JSON.
func (c *Client) admin(ctx context.Context, e inventory.Edge, method, path string, body, out any) error {
	return c.adminHeaders(ctx, e, method, path, body, out, nil)
}

// adminHeaders is admin with extra request headers.
func (c *Client) adminHeaders(ctx context.Context, e inventory.Edge, method, path string, body, out any, headers map[string]string) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.SiteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+e.Address+connector.AdminPath+path, rd)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	tok, err := controlToken(e)
	if err != nil {
		return fmt.Errorf("site table %s: %w", method, err)
	}
	req.Host = adminHost
	req.Header.Set(connector.HeaderAdmin, "1")
	req.Header.Set(connector.HeaderControl, tok)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.plain.Do(req)
	if err != nil {
		return fmt.Errorf("site table %s on edge %s: %w", method, e.ID, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("site table %s on edge %s: %w", method, e.ID, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		return fmt.Errorf("site table %s on edge %s: %w: %s", method, e.ID, &StatusError{Code: resp.StatusCode}, firstLine(data))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("site table %s on edge %s: %w", method, e.ID, err)
	}
	return nil
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 300 {
		b = b[:300]
	}
	return string(b)
}
