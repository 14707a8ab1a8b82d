package edge_test

import (
	"errors"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/varnishadm"
)

func asStatus(err error, target **edge.StatusError) bool { return errors.As(err, target) }

func asCLIError(err error, target **varnishadm.Error) bool { return errors.As(err, target) }
