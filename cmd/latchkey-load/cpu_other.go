//go:build !unix

package main

import "time"

// processCPU is not measured here; the CPU columns stay empty.
func processCPU() time.Duration { return 0 }
