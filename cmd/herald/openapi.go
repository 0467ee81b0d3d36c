package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/internal/node"
)

// openapiCmd writes the API's OpenAPI document, the one `herald serve` serves at /openapi.json,
// without starting a server: the SDKs' type generators read it (sdk/typescript: npm run generate).
func openapiCmd() *cobra.Command {
	var output, publicURL string
	cmd := &cobra.Command{
		Use:   "openapi [--output FILE]",
		Short: "Write the API's OpenAPI 3.1 document (JSON) without starting a server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := node.OpenAPI(node.Config{PublicURL: publicURL})
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				return fmt.Errorf("encode the document: %w", err)
			}
			b = append(b, '\n')
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if err := os.WriteFile(output, b, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", output, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (default: standard output)")
	cmd.Flags().StringVar(&publicURL, "public-url", "", "base URL to list in the document's servers (default: \"/\", the server that serves it)")
	return cmd
}
