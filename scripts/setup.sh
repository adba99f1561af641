#!/usr/bin/env bash
# setup.sh — make a fresh Debian 12 machine (root, no systemd, cgroup v1 hybrid)
# ready to build, test and benchmark berth. Idempotent: a rerun only checks.
#   1. Debian packages (apt-get only when one is missing)
#   2. hugetlb gets a cgroup v1 mount when the cgroup2 mount offers it (crun
#      refuses hybrid mode otherwise; see PEERS.md)
#   3. the busybox test rootfs: $BERTH_CACHE_DIR/rootfs (default /var/cache/berth/rootfs)
#   4. cargo build --release --workspace --bins
# Quiet on success. SETUP_SKIP_BUILD=1 skips step 4.
set -euo pipefail

die() { echo "setup: $*" >&2; exit 1; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

[[ $(id -u) -eq 0 ]] || die "must run as root (containers, cgroups and apt need it)"

# --- 1. packages -------------------------------------------------------------
packages=(
    busybox-static crun runc containerd hyperfine libseccomp-dev pkg-config
    golang-go jq iproute2 golang-github-containers-common umoci make
    docker-registry skopeo docker.io python3-venv tini podman curl
    nftables iperf3 docker-compose xfsprogs buildah
)
missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ $status == ii* ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # No package may start a system service (docker.io would start a host-wide dockerd):
    # the tests start private instances. Debian's policy-rc.d convention says "no".
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
    [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
fi

# --- 2. hugetlb on a v1 hierarchy ---------------------------------------------
# On a hybrid host the cgroup2 mount (/sys/fs/cgroup/unified) lists every
# controller no v1 hierarchy has claimed, hugetlb included; crun then says
# "cgroups in hybrid mode not supported". A v1 mount claims it.
unified=/sys/fs/cgroup/unified
if [[ -r $unified/cgroup.controllers ]] && grep -qw hugetlb "$unified/cgroup.controllers" \
    && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
    mkdir -p /sys/fs/cgroup/hugetlb
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb \
        || die "cannot mount the hugetlb cgroup v1 hierarchy on /sys/fs/cgroup/hugetlb"
fi

# --- 3. test rootfs (shared with scripts/mkbundle.sh's cache) -----------------
cache_dir=${BERTH_CACHE_DIR:-/var/cache/berth}
mkdir -p "$cache_dir"
{
    flock 9
    bash "$here/mkrootfs.sh" "$cache_dir/rootfs"
    touch "$cache_dir/rootfs.stamp"
} 9>"$cache_dir/rootfs.lock"

# --- 3b. the Docker SDK for Python (tests/e2e/tests/docker_py.rs) ------------
venv=$cache_dir/venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import docker' 2>/dev/null; then
    /usr/bin/python3 -m venv "$venv" || die "python3 -m venv $venv failed"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'docker==7.*' \
        || die "pip install docker==7.* into $venv failed"
fi

# --- 4. build -----------------------------------------------------------------
if [[ ${SETUP_SKIP_BUILD:-0} != 1 ]]; then
    [[ -d $HOME/.cargo/bin ]] && PATH=$HOME/.cargo/bin:$PATH
    command -v cargo >/dev/null || die "cargo not found (the Rust toolchain is expected preinstalled)"
    (cd "$repo" && cargo build --quiet --release --workspace --bins) \
        || die "cargo build --release --workspace --bins failed"
    # berth-runc as shipped: a static PIE (libseccomp linked statically, see .cargo/config.toml),
    # so each of its two execs per container start skips the dynamic loader. Benchmarks use it.
    # The berth CLI too: a static PIE starts ~0.25 ms sooner per command (no loader, no
    # relocations of shared libraries).
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
        --target x86_64-unknown-linux-gnu -p berth-runtime --bin berth-runc -p berth-cli --bin berth) \
        || die "cargo build of the static berth-runc and berth failed"
    # berth-shim as shipped: static and not position-independent, so no relocated pages are
    # private to each shim: ~250 KiB PSS per idle container instead of ~620 KiB. Its own target
    # dir, since different RUSTFLAGS would rebuild the other build's dependencies each time.
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        cargo build --quiet --release --target x86_64-unknown-linux-gnu --target-dir target/shim \
        -p berth-runtime --bin berth-shim) \
        || die "cargo build of the static berth-shim failed"
fi
