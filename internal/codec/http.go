package codec

import (
	"net/http"
	"slices"

	"go.temporal.io/sdk/converter"
)

// MaxRequestBytes bounds one request to the codec endpoint: a batch of
// payloads, each at most Temporal's 2 MB, as the Web UI sends them.
const MaxRequestBytes = 16 << 20

// Handler is the codec endpoint the Temporal Web UI calls as its data
// encoder (POST {endpoint}/decode and /encode with a JSON Payloads body):
// the SDK's converter.NewPayloadCodecHTTPHandler on the ring's Codec.
//
// Browsers may call it only from the listed UI origins
// ("http://127.0.0.1:8233"): a request with another Origin header gets
// 403, and CORS preflights (OPTIONS) are answered for the listed origins
// only, so a web page the operator happens to open cannot read payloads
// through it. Requests without an Origin (curl, `temporal --codec-endpoint`)
// are served: the endpoint listens on loopback (cdnflow codec-server).
func Handler(r *Ring, uiOrigins []string) http.Handler {
	codec := converter.NewPayloadCodecHTTPHandler(Codec{Ring: r})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		origin := req.Header.Get("Origin")
		if origin != "" {
			if !slices.Contains(uiOrigins, origin) {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Add("Vary", "Origin")
		}
		if req.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "POST")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		req.Body = http.MaxBytesReader(w, req.Body, MaxRequestBytes)
		codec.ServeHTTP(w, req)
	})
}
