#!/usr/bin/env bash
# Builds the real Kubernetes components that rotor's cluster lab
# (internal/cluster) runs, from source, at pinned versions:
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy
#                 k8s.io/kubernetes, pinned with its staging modules in tools/kube/go.mod
#   etcd          go.etcd.io/etcd/server/v3 (etcd's own main package), pinned in tools/etcd/go.mod
#   coredns       github.com/coredns/coredns at $COREDNS_VERSION below, with its own go.mod
#
# into ${ROTOR_KUBE_DIR:-$HOME/.cache/rotor/kube-v1.37.2}/bin, outside the
# repository. A binary whose stamp (bin/.NAME.stamp: its version, Go's
# version and a hash of its module build list and flags) matches is not
# built again. As root it first installs the Debian packages the lab
# needs (iproute2, iptables, nftables, conntrack); without root it reports
# what is missing.
#
# Measured 2026-11-30 on the 2-core lab machine (the script prints each
# binary's time): cold, with an empty Go build cache, 10 min 37 s for all six
# (kube-apiserver 187 s, kube-proxy 176 s, coredns 134 s,
# kube-controller-manager 99 s, etcd 28 s, kube-scheduler 10 s; modules
# download in under 10 s more); with a warm build cache 38 s (links only);
# with everything up to date 0.2 s.
#
#   tools/kube-build.sh           # build what is missing or out of date
#   tools/kube-build.sh -f        # rebuild everything
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/apt.sh

COREDNS_VERSION=v1.15.0
# tools/kube and tools/etcd are modules of their own, pinned by their own
# go.mod and go.sum, never part of the repository's go.work.
export GOWORK=off
kube_version=$(go -C tools/kube list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(go -C tools/etcd list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
dir=${ROTOR_KUBE_DIR:-$HOME/.cache/rotor/kube-$kube_version}
bin=$dir/bin
force=false
case "${1:-}" in
"") ;;
-f) force=true ;;
*) echo "usage: $0 [-f]   (-f rebuilds everything)" >&2; exit 2 ;;
esac

# --- Debian packages -------------------------------------------------------
# kube-proxy execs iptables-restore/iptables-save (iptables mode) or nft
# (nftables mode) and conntrack; the harness uses ip.
need=()
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v iptables-restore >/dev/null || [ -x /usr/sbin/iptables-restore ] || need+=(iptables)
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || need+=(nftables)
command -v conntrack >/dev/null || [ -x /usr/sbin/conntrack ] || need+=(conntrack)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		apt_install "${need[@]}"
	else
		echo "missing ${need[*]}; not root, so the cluster lab tests will skip (run this script as root to install them)"
	fi
fi

# --- Go builds -------------------------------------------------------------
mkdir -p "$bin"
go_version=$(go env GOVERSION)
# Statically linked, like Kubernetes' release binaries.
export CGO_ENABLED=0

# What k8s.io/kubernetes' hack/lib/version.sh sets, for both version
# packages, so that --version and /version report the pinned release.
major=${kube_version#v}; major=${major%%.*}
minor=${kube_version#v*.}; minor=${minor%%.*}
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
other_ldflags="-s -w"

# A stamp names what decides a binary's content: the pinned version, Go's
# version, and a hash of the module's build list (every module version and
# replacement, so a comment in go.mod does not count) and the flags.
buildhash() { { go -C "$1" list -m all; echo "$2"; } | sha256sum | cut -c1-16; }
kube_stamp="kubernetes $kube_version $go_version build $(buildhash tools/kube "$kube_ldflags")"
etcd_stamp="etcd $etcd_version $go_version build $(buildhash tools/etcd "$other_ldflags")"
coredns_stamp="coredns $COREDNS_VERSION $go_version build $(echo "$other_ldflags" | sha256sum | cut -c1-16)"

built=()
timings=()
# build NAME STAMP COMMAND...: runs COMMAND, which must write $bin/NAME.new,
# unless $bin/NAME exists with the same stamp.
build() {
	local name=$1 stamp=$2
	shift 2
	if ! $force && [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	echo "building $name ($stamp)"
	local start=$SECONDS
	rm -f "$bin/$name.new"
	"$@"
	mv -f "$bin/$name.new" "$bin/$name"
	echo "$stamp" > "$bin/.$name.stamp"
	built+=("$name")
	timings+=("$name $((SECONDS - start)) s")
}

for name in kube-proxy kube-apiserver kube-controller-manager kube-scheduler; do
	build "$name" "$kube_stamp" \
		go -C tools/kube build -trimpath -ldflags "$kube_ldflags" -o "$bin/$name.new" "k8s.io/kubernetes/cmd/$name"
done
build etcd "$etcd_stamp" \
	go -C tools/etcd build -trimpath -ldflags "$other_ldflags" -o "$bin/etcd.new" go.etcd.io/etcd/server/v3

# go install is the way CoreDNS builds with its own go.mod (and no replace
# directives); it installs into a scratch GOBIN, then the binary moves.
install_coredns() {
	local gobin
	gobin=$(mktemp -d)
	GOBIN=$gobin go install -trimpath -ldflags "$other_ldflags" "github.com/coredns/coredns@$COREDNS_VERSION"
	mv "$gobin/coredns" "$bin/coredns.new"
	rm -rf "$gobin"
}
build coredns "$coredns_stamp" install_coredns

if [ ${#built[@]} -eq 0 ]; then
	echo "all components up to date"
else
	printf 'built in %s\n' "${timings[@]}"
fi
echo "components in $bin:"
"$bin/kube-apiserver" --version
"$bin/etcd" --version | sed -n 1p
"$bin/coredns" -version | sed -n 1p
echo "(internal/cluster finds them there; set ROTOR_KUBE_DIR=$dir when it is not the default)"
