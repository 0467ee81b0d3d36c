package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/destination"
)

// SourceType describes one broker source type of this server, for forms (the dashboard, the
// tenant portal) and clients: the settings of its config, from the type itself (a source type
// describes them as a destination type does, destination.Describer), never from a second copy.
type SourceType struct {
	Name string `json:"name" doc:"The broker source's type."`
	// Described: the type describes its settings. Otherwise its config is documented only on
	// its page under docs/sources/.
	Described bool                  `json:"described" doc:"Whether settings describe its config; false for a type that does not describe itself (its config is documented on its page)."`
	Settings  []destination.Setting `json:"settings" nullable:"false" doc:"The fields of its config, in the order a form shows them; destination marks those that say where the source reads."`
}

// sourceTypes are the registry's types, described.
func (s *Server) sourceTypes() []SourceType {
	names := s.cfg.SourceTypes.Names()
	out := make([]SourceType, 0, len(names))
	for _, name := range names {
		typ, _ := s.cfg.SourceTypes.Get(name)
		_, described := typ.(destination.Describer)
		d := SourceType{Name: name, Described: described, Settings: destination.Describe(typ)}
		if d.Settings == nil {
			d.Settings = []destination.Setting{}
		}
		out = append(out, d)
	}
	return out
}

func (s *Server) registerSourceTypes() {
	huma.Register(s.api, huma.Operation{
		OperationID: "list-source-types", Method: http.MethodGet, Path: "/v1/source-types", Tags: []string{"Broker sources"},
		Summary: "List the broker source types this server runs, with their settings",
		Description: "Every broker source type this server runs, each with the fields of its config, described as those of a destination type " +
			"(GET /v1/destination-types): kind, whether required, whether a credential (never shown once set), the default, the accepted values, " +
			"whether it says where the source reads, and a sentence of help. Any key may read it (admin, tenant, portal link): the dashboard " +
			"builds its broker source forms from it. A server that runs no source type answers an empty list.",
	}, func(ctx context.Context, _ *struct{}) (*Out[ListBody[SourceType]], error) {
		return &Out[ListBody[SourceType]]{Body: list(s.sourceTypes(), "")}, nil
	})
}
