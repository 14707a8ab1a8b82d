package service

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cdnflow/cdnflow/distribution"
	"github.com/cdnflow/cdnflow/edge/connector"
)

// originChecker resolves origin names with the edges' connector options
// (the same address policy, DNS server and CA bundle), built on first use.
type originChecker struct {
	once sync.Once
	c    *connector.Connector
	err  error
}

func (s *Service) originConnector() (*connector.Connector, error) {
	s.origins.once.Do(func() {
		s.origins.c, s.origins.err = connector.New(s.config.ConnectorOptions("", s.logger))
	})
	return s.origins.c, s.origins.err
}

// checkOrigins refuses, with a ValidationError (resultCode 10001) naming
// the origin, an origin whose literal address or any address its name
// resolves to is one the edges' connectors refuse: loopback (except the
// allowed dev origin), link-local and metadata, multicast, and private
// unless --allow-private-origins (internal/netguard). A name
// that does not resolve passes here: the distribution's probe sends it to
// ERROR with the reason, so a DNS record created after the distribution
// still works.
func (s *Service) checkOrigins(ctx context.Context, c distribution.Config) error {
	conn, err := s.originConnector()
	if err != nil {
		return fmt.Errorf("origin checker: %w", err)
	}
	for i, o := range c.ConnectorOrigins() {
		err := conn.CheckAddresses(ctx, o)
		var oe *connector.OriginError
		if errors.As(err, &oe) && oe.Kind == connector.KindRefused {
			return invalid("origins[%d].origin %q: %s", i, c.Origins[i].Origin, oe.Error())
		}
	}
	return nil
}
