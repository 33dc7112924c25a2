package caddymodule_test

import (
	"testing"

	"github.com/latchkeyhq/latchkey/internal/store/postgres/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster pgtest starts for the
// tests that use storage postgres (none is started if no test asks).
func TestMain(m *testing.M) { pgtest.Main(m) }
