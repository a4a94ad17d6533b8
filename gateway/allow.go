package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// A route is one path of Config.OpenAPI with the methods it serves. The
// gateway answers a 405 with an Allow header from them, as HTTP wants:
// grpc-gateway's mux knows the methods of a path but does not tell.
type route struct {
	segments []string // a path parameter is "{}"
	methods  []string // upper case, sorted
}

const paramSegment = "{}"

// routesOf reads the paths of an OpenAPI (Swagger 2 or OpenAPI 3) document.
// A path whose parameters span several segments ({name=shelves/*}) is left
// out: its 405s go without Allow rather than with a wrong one.
func routesOf(doc []byte) []route {
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if json.Unmarshal(doc, &spec) != nil {
		return nil
	}
	var routes []route
	for path, ops := range spec.Paths {
		rt := route{segments: strings.Split(strings.Trim(path, "/"), "/")}
		multi := false
		for i, s := range rt.segments {
			if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
				multi = multi || strings.ContainsAny(s, "=*")
				rt.segments[i] = paramSegment
			}
		}
		for m := range ops {
			switch m := strings.ToUpper(m); m {
			case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
				http.MethodDelete, http.MethodOptions, http.MethodTrace:
				rt.methods = append(rt.methods, m)
			}
		}
		if !multi && len(rt.methods) > 0 {
			slices.Sort(rt.methods)
			routes = append(routes, rt)
		}
	}
	return routes
}

// allow returns the methods the routes serve at path, for an Allow header,
// or "" when no route matches it.
func allow(routes []route, path string) string {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	var methods []string
	for _, rt := range routes {
		if len(rt.segments) != len(segments) {
			continue
		}
		match := true
		for i, s := range rt.segments {
			match = match && (s == segments[i] || s == paramSegment && segments[i] != "")
		}
		if match {
			methods = append(methods, rt.methods...)
		}
	}
	slices.Sort(methods)
	return strings.Join(slices.Compact(methods), ", ")
}
