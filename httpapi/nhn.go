package httpapi

// NHNHeader is the envelope every /v1.5 response carries. NHN answers every
// request with HTTP 200 and puts the outcome here.
type NHNHeader struct {
	IsSuccessful  bool   `json:"isSuccessful"`
	ResultCode    int    `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
}

// NHNResponse is a body with nothing but the header.
type NHNResponse struct {
	Header NHNHeader `json:"header"`
}

// resultCodes of the /v1.5 API; the README lists them with their meaning.
const (
	NHNSuccess            = 0
	NHNInvalidParameter   = 10001
	NHNNotFound           = 10002
	NHNUnauthorized       = 10003
	NHNOperationInFlight  = 10004
	NHNPayloadTooLarge    = 10005
	NHNRateLimited        = 30001
	NHNInvalidState       = 30003
	NHNInternalError      = 50000
	NHNTemporalUnavailble = 50001
)

// NHNOK is the success header.
func NHNOK() NHNHeader {
	return NHNHeader{IsSuccessful: true, ResultCode: NHNSuccess, ResultMessage: "SUCCESS"}
}

// nhnResultHeader carries a failed resultCode to the metrics middleware
// (NHN answers errors with HTTP 200, so the status alone cannot tell).
const nhnResultHeader = "X-Cdnflow-Result-Code"
