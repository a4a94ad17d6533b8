#!/usr/bin/env bash
# Installs what rotor's tests use and a fresh Debian machine lacks: the lab's
# iptables, conntrack, dnsmasq and nginx, and curl. Needs root (apt-get);
# without root it only reports what is missing, and the tests that need it
# skip with that message.
set -euo pipefail

need=()
command -v iptables-restore >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)

if [ ${#need[@]} -eq 0 ]; then
	echo "all test dependencies present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "missing ${need[*]}; not root, so the tests that need them will skip"
	exit 0
fi
echo "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# The tests start their own dnsmasq and nginx inside network namespaces; keep
# the packages from starting system-wide daemons on install.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# Another apt may hold the lock for a while on a fresh machine.
for i in $(seq 1 60); do
	if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; then
		exit 0
	fi
	echo "apt-get failed (attempt $i); retrying in 5 s"; sleep 5
done
echo "could not install ${need[*]}"; exit 1
