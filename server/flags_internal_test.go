package server

import (
	"reflect"
	"testing"
)

// Every flagUsage entry names a Config field: help for a field renamed or
// removed would otherwise stay behind unused.
func TestFlagUsageNamesFields(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	for name := range flagUsage {
		if f, ok := typ.FieldByName(name); !ok || !f.IsExported() {
			t.Errorf("flagUsage has help for %s, which is not an exported Config field", name)
		}
	}
}
