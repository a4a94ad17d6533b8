package interceptors

import (
	"strings"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// The services whose calls are not the program's own: Kubernetes probes,
// and the kit's fair-share load queries between pods (two to eight a second
// per pod) and ORCA's out-of-band load reports. The chain neither logs
// (health unless WithLogHealthChecks) nor traces them; its metrics count
// them, under their own grpc_service.
const (
	healthService = "grpc.health.v1.Health"
	orcaService   = "xds.service.orca.v3.OpenRcaService"
)

var loadService = fairsharev1.LoadService_ServiceDesc.ServiceName

// kitService reports whether service is one of the kit's own (fair share's
// load queries, ORCA's reports), never logged or traced.
func kitService(service string) bool {
	return service == loadService || service == orcaService
}

// serviceOf returns the service of a full method name, "/pkg.Svc/Method".
func serviceOf(fullMethod string) string {
	service, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return service
}
