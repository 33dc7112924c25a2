// Package latchkey is the Caddy plugin: importing it (or building Caddy with
// xcaddy --with github.com/latchkeyhq/latchkey) registers the latchkey app,
// the latchkey handler and directive, the admin routes and the
// `caddy latchkey` commands. The code lives in caddymodule and internal/.
package latchkey

import (
	// Registers every latchkey module with Caddy.
	_ "github.com/latchkeyhq/latchkey/caddymodule"
)
