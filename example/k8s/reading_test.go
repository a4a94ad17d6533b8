package k8s

import "testing"

// TestFairShareReading checks the scale-up test's diagnostic: each pod's
// connections averaged over the samples that scraped it, and its load per
// connection against the fleet's over all samples.
func TestFairShareReading(t *testing.T) {
	samples := []callSample{
		{fsConns: map[string]float64{"a": 4, "b": 4}, fsLoad: map[string]float64{"a": 0.4, "b": 0.8}},
		// c was scraped only here; d had no connections.
		{fsConns: map[string]float64{"a": 4, "b": 4, "c": 2, "d": 0}, fsLoad: map[string]float64{"a": 0.4, "b": 0.8, "c": 0.3, "d": 0}},
	}
	// The fleet: 2.7 of load on 18 connections, 0.15 a connection.
	want := "a 4.0 connections, load per connection 0.67 of the fleet's; " +
		"b 4.0 connections, load per connection 1.33 of the fleet's; " +
		"c 2.0 connections, load per connection 1.00 of the fleet's; " +
		"d 0.0 connections, load per connection 0.00 of the fleet's"
	if got := fairShareReading(samples); got != want {
		t.Errorf("fairShareReading:\n got %s\nwant %s", got, want)
	}
	if got := fairShareReading(nil); got != "" {
		t.Errorf("fairShareReading(nil) = %q, want \"\"", got)
	}
}
