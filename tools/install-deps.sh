#!/usr/bin/env bash
# Installs what rotor's tests use and a fresh Debian machine lacks: the lab's
# iptables, conntrack, dnsmasq and nginx; curl; the interop clients'
# runtimes (example/interop): Node.js with npm, and Python's grpcio; and
# Prometheus with promtool (example/k8s/monitoring: the rules' unit tests,
# and a real Prometheus scraping the lab's pods). Needs
# root (apt-get); without root it only reports what is missing, and the tests
# that need it skip with that message. As root, once everything is in place,
# it leaves the stamp .cache/install-deps-root, which tells the interop tests
# that a missing runtime is a failure, not a reason to skip.
#
# It then installs the grpc-js client's packages (npm ci, from
# example/interop/node/package-lock.json) when npm is there, and builds
# grpcurl from tools/go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/apt.sh

# python_grpc: Debian's python3, where python3-grpcio installs, or the
# python3 on PATH, imports grpc. The interop test looks in the same order.
python_grpc() {
	local py
	for py in /usr/bin/python3 python3; do
		if command -v "$py" >/dev/null && "$py" -c 'import grpc' 2>/dev/null; then
			return 0
		fi
	done
	return 1
}

need=()
command -v iptables-restore >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
python_grpc || need+=(python3-grpcio)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || need+=(prometheus)

root=false
[ "$(id -u)" -eq 0 ] && root=true
if [ ${#need[@]} -eq 0 ]; then
	echo "all test dependencies present"
elif $root; then
	apt_install "${need[@]}"
else
	echo "missing ${need[*]}; not root, so the tests that need them will skip"
fi

# The grpc-js client's packages. npm ci rewrites node_modules/.package-lock.json,
# so a node_modules at least as new as the lock file is up to date (the
# interop test reads it the same way).
node_dir=example/interop/node
if command -v npm >/dev/null; then
	if [ ! -e "$node_dir/node_modules/.package-lock.json" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
		echo "npm ci in $node_dir"
		(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
fi

# grpcurl, pinned in tools/go.mod, for the interop tests: build it now (go
# caches the binary) so that a test does not spend a cold build's minute.
if command -v go >/dev/null; then
	GOWORK=off go tool -modfile=tools/go.mod -n grpcurl >/dev/null
fi

if $root; then
	mkdir -p .cache
	echo "tools/install-deps.sh ran as root on $(date -u +%FT%TZ)" > .cache/install-deps-root
fi
