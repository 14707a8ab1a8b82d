package service

import (
	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
)

func newSearchAttributes(updates ...temporal.SearchAttributeUpdate) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(updates...)
}

func newUUID() string { return uuid.NewString() }
