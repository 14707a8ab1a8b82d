package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/traffic"
	"github.com/cdnflow/cdnflow/inventory"
)

// Traffic reads edge e's live traffic (connector.TrafficPath through the
// edge, a control request like the site table's) for q: distribution,
// step (1s, 1m), since (Unix seconds). An edge whose connector reads no
// request log is a *StatusError 404; an answer past
// traffic.MaxReportBytes fails to decode.
func (c *Client) Traffic(ctx context.Context, e inventory.Edge, q url.Values) (traffic.Report, error) {
	var rep traffic.Report
	ctx, cancel := context.WithTimeout(ctx, c.opts.SiteTimeout)
	defer cancel()
	u := "http://" + e.Address + connector.TrafficPath
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return rep, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	tok, err := controlToken(e)
	if err != nil {
		return rep, fmt.Errorf("traffic: %w", err)
	}
	req.Host = adminHost
	req.Header.Set(connector.HeaderAdmin, "1")
	req.Header.Set(connector.HeaderControl, tok)
	resp, err := c.plain.Do(req)
	if err != nil {
		return rep, fmt.Errorf("traffic of edge %s: %w", e.ID, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, traffic.MaxReportBytes))
	if err != nil {
		return rep, fmt.Errorf("traffic of edge %s: %w", e.ID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("traffic of edge %s: %w: %s", e.ID, &StatusError{Code: resp.StatusCode}, firstLine(data))
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return rep, fmt.Errorf("traffic of edge %s: %w", e.ID, err)
	}
	return rep, nil
}
