package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// NHN calls the stack's NHN v1.5 API as appKey (Authorization = secret):
// method on /v1.5/appKeys/<appKey><path> with body as JSON, the answer
// decoded into out (when not nil). An answer whose header is not
// isSuccessful is an error carrying the body.
func (s *Stack) NHN(hc *http.Client, appKey, secret, method, path string, body, out any) error {
	var rdr io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		rdr = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.APIURL+"/v1.5/appKeys/"+appKey+path, rdr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	var h struct {
		Header struct{ IsSuccessful bool }
	}
	if err := json.Unmarshal(data, &h); err != nil || !h.Header.IsSuccessful {
		return fmt.Errorf("%s %s: %s", method, path, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}
