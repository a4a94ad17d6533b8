# Sourced by tools/install-deps.sh and tools/kube-build.sh.

# apt_install PACKAGE...: installs Debian packages (run it as root), without
# letting them start the daemons they ship: the labs run their own dnsmasq,
# nginx, Prometheus and nft inside network namespaces. Another apt may hold
# the lock for a while on a fresh machine, so it tries for five minutes, then
# ends the script.
apt_install() {
	echo "installing $*"
	export DEBIAN_FRONTEND=noninteractive
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	local i
	for i in $(seq 1 60); do
		if apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"; then
			hash -r
			return 0
		fi
		echo "apt-get failed (attempt $i); retrying in 5 s"; sleep 5
	done
	echo "could not install $*"; exit 1
}
