package service

import "regexp"

var hostnameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// validHostname accepts a lower-case DNS name: the only form that reaches an
// edge's Host header and VCL.
func validHostname(h string) bool { return len(h) <= 253 && hostnameRe.MatchString(h) }
