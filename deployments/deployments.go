// Package deployments holds the compose file, Kubernetes manifests,
// Dockerfile and the dev edge inventory. The inventory is embedded in the
// binary, so `cdnflow dev` runs from any directory.
package deployments

import _ "embed"

// DevEdges is dev/edges.yaml, the edge inventory `cdnflow dev` uses when
// no --edges file is given: three managed varnishd edges on loopback. Its
// secretFile paths are relative to the data directory.
//
//go:embed dev/edges.yaml
var DevEdges []byte
