package gateway

import "testing"

func TestAllow(t *testing.T) {
	routes := routesOf([]byte(`{"paths": {
		"/v1/hi": {"post": {}, "parameters": []},
		"/v1/shelves/{shelf}": {"get": {}, "delete": {}},
		"/v1/shelves/{shelf}/books": {"get": {}},
		"/v1/{name=shelves/*}/books": {"put": {}},
		"/v1/{shelf}": {"patch": {}}
	}}`))
	for path, want := range map[string]string{
		"/v1/hi":                 "PATCH, POST", // /v1/{shelf} matches it too, as it would route it
		"/v1/shelves/s1":         "DELETE, GET",
		"/v1/shelves/s1/books":   "GET", // the multi-segment PUT is left out
		"/v1/shelves":            "PATCH",
		"/v1/nope/more/and/more": "",
		"/v1/":                   "", // a parameter is never empty
	} {
		if got := allow(routes, path); got != want {
			t.Errorf("allow(%q) = %q, want %q", path, got, want)
		}
	}
	if routesOf([]byte(`not json`)) != nil || routesOf(nil) != nil {
		t.Error("routes from a document that is not JSON")
	}
}
