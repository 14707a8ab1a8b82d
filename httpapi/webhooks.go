package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

// Webhook subscriptions (docs/webhooks.md): POST /v1/webhooks creates one
// for the body's appKey (its signing secret is in this answer only), GET
// /v1/webhooks?appKey= lists them, DELETE /v1/webhooks/{id}?appKey=
// removes one, GET /v1/webhooks/{id}/deliveries?appKey= is its delivery
// log. Admin on the appKey to create and delete, read to list.
func (s *Server) routesWebhooks(e *echo.Echo) {
	g := e.Group("/v1/webhooks", s.authenticate)
	g.POST("", s.createWebhook)
	g.GET("", s.listWebhooks)
	g.DELETE("/:id", s.deleteWebhook)
	g.GET("/:id/deliveries", s.webhookDeliveries)
}

// createdWebhook is POST /v1/webhooks's answer: the subscription and,
// once, its secret.
type createdWebhook struct {
	workflows.WebhookSubscription
	Secret string `json:"secret"`
}

func (s *Server) createWebhook(c echo.Context) error {
	var req service.WebhookRequest
	if err := bind(c, &req, `JSON with appKey, url and events`); err != nil {
		return err
	}
	sub, secret, err := s.svc().CreateWebhook(c.Request().Context(), req)
	if err != nil {
		return about("appKey "+req.AppKey, err)
	}
	return c.JSON(http.StatusCreated, createdWebhook{WebhookSubscription: sub, Secret: secret})
}

func (s *Server) listWebhooks(c echo.Context) error {
	appKey := c.QueryParam("appKey")
	list, err := s.svc().ListWebhooks(c.Request().Context(), appKey)
	if err != nil {
		return about("appKey "+appKey, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"webhooks": list})
}

func (s *Server) deleteWebhook(c echo.Context) error {
	if err := s.svc().DeleteWebhook(c.Request().Context(), c.QueryParam("appKey"), c.Param("id")); err != nil {
		return about("webhook "+c.Param("id"), err)
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) webhookDeliveries(c echo.Context) error {
	l, err := s.svc().WebhookDeliveries(c.Request().Context(), c.QueryParam("appKey"), c.Param("id"))
	if err != nil {
		return about("webhook "+c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, l)
}
