package caddymodule

import (
	"bytes"

	"github.com/spf13/cobra"
)

// RunCLI runs `caddy latchkey <args>` in-process, for the integration tests
// in package caddymodule_test.
func RunCLI(args ...string) (string, error) {
	root := &cobra.Command{Use: "latchkey"}
	buildCommand(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}
