package node

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/source"
)

// OpenAPI builds the OpenAPI document a node with cfg serves at /openapi.json (its destination
// and broker source types included), without a store or a listener: for `herald openapi` and the
// SDKs' generators.
func OpenAPI(cfg Config) (*huma.OpenAPI, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	client := httpsend.New(cfg.HTTPSend)
	dests, err := destinations(cfg, log, client, client)
	if err != nil {
		return nil, fmt.Errorf("destination types: %w", err)
	}
	var types []source.Type
	env := source.Env{Dial: client.DialContext, InternalDial: client.DialContext, Logger: log}
	for _, newType := range append(sourceTypeConstructors(), cfg.Sources...) {
		types = append(types, newType(env))
	}
	sourceTypes, err := source.NewRegistry(types...)
	if err != nil {
		return nil, fmt.Errorf("broker source types: %w", err)
	}
	a := api.New(api.Config{Destinations: dests, SourceTypes: sourceTypes, Logger: log, Version: Version, PublicURL: cfg.PublicURL})
	return a.OpenAPI(), nil
}
