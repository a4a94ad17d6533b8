package hello

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"

	"google.golang.org/grpc/metadata"
)

// WorkKey is the incoming metadata key that gives a Hi call a cost: its value
// is a number of work units, decimal, that the handler computes before it
// answers. One unit is one SHA-256 digest of the previous unit's 32-byte
// digest (one compression of a 64-byte block): deterministic CPU work, about
// 0.1 µs with the CPU's SHA extensions and 0.3–0.5 µs without, never a
// sleep. Load tests use it to give calls uneven, real costs.
const WorkKey = "rotor-work"

// MaxWork caps the work units of one call, so that a client cannot pin a
// CPU for long: a larger value does MaxWork units (well under a second of
// CPU on any current core).
const MaxWork = 1_000_000

// workCheckEvery is how many units run between two looks at the call's
// context: a cancelled call stops within a few hundred microseconds.
const workCheckEvery = 4096

// WorkUnits returns the work units the incoming metadata of ctx asks for:
// the first WorkKey value as a decimal integer, capped at MaxWork. An
// absent, empty, negative or malformed value asks for none (0).
func WorkUnits(ctx context.Context) int {
	v := metadata.ValueFromIncomingContext(ctx, WorkKey)
	if len(v) == 0 {
		return 0
	}
	s := strings.TrimSpace(v[0])
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s, "-"):
		return MaxWork // a number, only too large for int64
	case err != nil || n < 0:
		return 0
	}
	return int(min(n, MaxWork))
}

// doWork computes n work units and returns the last digest; it stops early,
// with ctx's error, when ctx ends.
func doWork(ctx context.Context, n int) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	for i := range n {
		if i%workCheckEvery == workCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return d, err
			}
		}
		d = sha256.Sum256(d[:])
	}
	return d, nil
}
