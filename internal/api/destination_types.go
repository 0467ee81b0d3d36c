package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/destination"
)

// DestinationType describes one destination type of this server, for forms (the dashboard, the
// tenant portal) and clients: which settings its config has, from the type itself
// (destination.Describer), never from a second copy.
type DestinationType struct {
	Name string `json:"name" doc:"The endpoint's type."`
	// URL: the destination is the endpoint's url (webhook), not a config.
	URL bool `json:"url" doc:"Whether an endpoint of this type delivers to its url (webhook) instead of a config."`
	// Described: the type describes its settings. Otherwise its config is documented only on
	// its page under docs/destinations/.
	Described bool                  `json:"described" doc:"Whether settings describe its config; false for a type that does not describe itself (its config is documented on its page)."`
	Settings  []destination.Setting `json:"settings" nullable:"false" doc:"The fields of its config, in the order a form shows them."`
}

// destinationTypes is the registry's types, described.
func (s *Server) destinationTypes() []DestinationType {
	names := s.dests.Names()
	out := make([]DestinationType, 0, len(names))
	for _, name := range names {
		typ, _ := s.dests.Get(name)
		_, described := typ.(destination.Describer)
		d := DestinationType{Name: name, URL: name == destination.TypeWebhook, Described: described || name == destination.TypeWebhook,
			Settings: destination.Describe(typ)}
		if d.Settings == nil {
			d.Settings = []destination.Setting{}
		}
		out = append(out, d)
	}
	return out
}

func (s *Server) registerDestinationTypes() {
	huma.Register(s.api, huma.Operation{
		OperationID: "list-destination-types", Method: http.MethodGet, Path: "/v1/destination-types", Tags: []string{"Endpoints"},
		Summary: "List the destination types an endpoint may have, with their settings",
		Description: "Every destination type this server was built with (webhook and the message broker types), each with the fields of its config: " +
			"kind, whether required, whether a credential (never shown once set), the default, the accepted values and a sentence of help. " +
			"Any key may read it (admin, tenant, portal link): the dashboard builds its endpoint forms from it.",
	}, func(ctx context.Context, _ *struct{}) (*Out[ListBody[DestinationType]], error) {
		return &Out[ListBody[DestinationType]]{Body: list(s.destinationTypes(), "")}, nil
	})
}
