package service

import "go.temporal.io/sdk/temporal"

func newSearchAttributes(updates ...temporal.SearchAttributeUpdate) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(updates...)
}
