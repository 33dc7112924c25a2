// Command caddy is Caddy with the standard modules and latchkey, for
// development and for users who build without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// The standard Caddy modules and latchkey.
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/latchkeyhq/latchkey"
)

func main() {
	caddycmd.Main()
}
