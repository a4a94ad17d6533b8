// Package tally prints the counts the labs keep by name, such as failed
// calls by gRPC code, the same way in every report.
package tally

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Counts prints m as "name count" pairs in name order, joined by ", ":
// {Unavailable: 3, DeadlineExceeded: 1} → "DeadlineExceeded 1, Unavailable 3".
// Empty or nil m: "".
func Counts[N int | int64](m map[string]N) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
