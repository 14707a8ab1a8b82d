package edge_test

import (
	"errors"

	"github.com/cdnflow/cdnflow/edge"
)

func asStatus(err error, target **edge.StatusError) bool { return errors.As(err, target) }
