// Package proto holds rotor's protobuf sources (hello/v1, rotor/fairshare/v1)
// and, in gen/, the code and OpenAPI documents generated from them by
// `GOWORK=off go tool -modfile=tools/go.mod buf generate`.
package proto

import _ "embed"

// HelloOpenAPI is the OpenAPI v2 document of the hello.v1 REST routes, for
// the gateway to serve (gateway.Config.OpenAPI).
//
//go:embed gen/hello/v1/hello.swagger.json
var HelloOpenAPI []byte
