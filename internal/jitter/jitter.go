// Package jitter spreads a duration by ±10 %, as grpc-go does for
// MaxConnectionAge, so that connections opened together do not end together.
package jitter

import (
	"math"
	"math/rand/v2"
	"time"
)

// Apply returns d spread uniformly by ±10 %. A d too short to spread, or
// so long that d + 10 % would overflow, is returned as is.
func Apply(d time.Duration) time.Duration {
	r := int64(d / 10)
	if r <= 0 || int64(d) > math.MaxInt64-r {
		return d
	}
	return d + time.Duration(rand.Int64N(2*r+1)-r)
}
