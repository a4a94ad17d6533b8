#!/usr/bin/env bash
# Runs every check rotor's CI runs: formatting, vet (also of the kit for
# macOS, Windows and 32-bit ARM), tidy modules, generated-code drift, buf
# lint, the whole test suite of every module of the workspace (go.work)
# under the race detector, the kit's tests on 386, every benchmark once,
# then 10 s of each fuzz target. The lab tests need root plus iptables,
# conntrack, dnsmasq and nginx, and the cluster lab's Kubernetes components
# (tools/kube-build.sh): as root this script installs and builds what is
# missing; elsewhere those tests skip and say why.
#
#   tools/test.sh            # everything
#   tools/test.sh -short     # skip the long tests (passed on to go test)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# The modules of the workspace, as package patterns.
modules=(./... ./example/... ./internal/cluster/...)

step "installing test dependencies"
tools/install-deps.sh

# The real control plane's components for internal/cluster and
# example/k8s's TestRealCluster: about 11 min cold on 2 cores, seconds when
# up to date; without root the script reports what is missing and those
# tests skip.
step "building the real Kubernetes components (tools/kube-build.sh)"
tools/kube-build.sh

step "gofmt"
unformatted=$(gofmt -l $(git ls-files -co --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
	echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet "${modules[@]}"

# The kit and the example server and client are for every platform Go
# runs grpc-go on; the labs are Linux's. Vetting them, and the rotor
# packages they and their tests import, for macOS, Windows and a 32-bit
# target type-checks their platform files and tests (cold, about 40 s a
# target on 2 cores).
step "the kit builds for other platforms (go vet)"
kit_pkgs=$(go list -deps -test ./server/... ./gateway/... ./interceptors/... ./example/server ./example/client |
	sed 's/ \[.*//' | grep '^github.com/rotorkit/rotor/' | grep -v -e '\.test$' -e '_test$' | sort -u)
for target in darwin/arm64 windows/amd64 linux/arm; do
	echo "$target"
	GOOS=${target%/*} GOARCH=${target#*/} go vet $kit_pkgs
done

step "go.mod files are tidy"
for dir in . example internal/cluster; do
	if ! (cd "$dir" && GOWORK=off go mod tidy -diff); then
		echo "$dir/go.mod is not tidy; run: (cd $dir && GOWORK=off go mod tidy)"; exit 1
	fi
done

# tools/go.mod is not part of the workspace: GOWORK=off.
step "generated code is up to date (buf generate) and buf lint"
GOWORK=off go tool -modfile=tools/go.mod buf lint
GOWORK=off go tool -modfile=tools/go.mod buf generate
if [ -n "$(git status --porcelain -- proto/gen)" ]; then
	echo "proto/gen differs from what buf generate writes; run: GOWORK=off go tool -modfile=tools/go.mod buf generate"
	git status --porcelain -- proto/gen
	git diff --stat -- proto/gen
	exit 1
fi

# The packages that run a real control plane (internal/cluster and
# example/k8s, whose TestRealCluster measures balance) run after the rest,
# one package at a time, so that two clusters never share the 2 cores.
cluster_pkgs=(./internal/cluster/... ./example/k8s)
other_pkgs=$(go list "${modules[@]}" | grep -v -e '/internal/cluster\(/\|$\)' -e '/example/k8s$')
# example/balance's TestRealClusterBackend starts a real control plane: it
# runs with the real-control-plane packages, not beside the other labs.
real_backend='^TestRealClusterBackend$'
step "go test -race"
go test -race -count=1 -timeout 30m -skip "$real_backend" "$@" $other_pkgs
# The kit's tests with a 32-bit int and pointers (GOARCH=386, -short,
# without the race detector, which 386 lacks, and without this script's
# arguments: about 90 s), where the kernel runs 386 binaries.
step "go test: the kit on 386"
probe=$(mktemp)
trap 'rm -f "$probe"' EXIT # also when a step below fails
GOARCH=386 go test -c -o "$probe" ./internal/jitter
runs386=false
if "$probe" -test.run '^$' >/dev/null 2>&1; then runs386=true; fi
rm -f "$probe"
trap - EXIT
if $runs386; then
	GOARCH=386 go test -short -count=1 $(echo "$kit_pkgs" | grep -v '/example/')
else
	echo "skipped: this kernel does not run 386 binaries"
fi
step "go test -race: the real-control-plane packages and tests, one at a time"
go test -race -count=1 -timeout 30m -p 1 "$@" "${cluster_pkgs[@]}"
go test -race -count=1 -timeout 30m -run "$real_backend" "$@" ./example/balance

# Every benchmark once, so that none rots; the numbers of a single
# iteration mean nothing (README.md says how to measure). -short leaves out
# the sizes that take minutes (the fleets of 200 and 1,000 pods).
step "benchmarks compile and run (one iteration each)"
go test -short -run '^$' -bench . -benchtime 1x -timeout 20m "$@" "${modules[@]}"

# Each fuzz target briefly, from its committed seeds (testdata/fuzz/<Name>);
# an input that fails is written there, to commit with its fix. go test
# fuzzes one target per run. The budgets are counts of inputs (about 10 s
# each here), not durations: with a duration, Go 1.26's fuzz coordinator
# can report its own deadline as a failure ("context deadline exceeded", no
# input written; go.dev/issue/75804, fixed in Go 1.27).
step "fuzz"
go test -run '^$' -fuzz '^FuzzConfig$' -fuzztime 50000x ./server
go test -run '^$' -fuzz '^FuzzFrameWriter$' -fuzztime 30000x ./server
go test -run '^$' -fuzz '^FuzzGateway$' -fuzztime 50000x ./gateway
