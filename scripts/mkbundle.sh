#!/usr/bin/env bash
# mkbundle.sh [--host-net] [--readonly] DIR [ARG...] — an OCI bundle for tests and benchmarks.
#
# DIR/rootfs: a copy of the cached busybox rootfs (scripts/mkrootfs.sh, kept in
#             $BERTH_CACHE_DIR/rootfs, default /var/cache/berth/rootfs).
# DIR/config.json: scripts/config.template.json (the shape `runc spec` writes, with
#             Docker's default capabilities, terminal false, rootfs writable), with
#             process.args set to ARG... (default: sh).
# --host-net  drop the network namespace (the container shares the host's).
# --readonly  make the root filesystem read-only.
# Idempotent; quiet on success.
set -euo pipefail

die() { echo "mkbundle: $*" >&2; exit 1; }
usage="usage: mkbundle.sh [--host-net] [--readonly] DIR [ARG...]"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
host_net=false readonly_root=false
while [[ $# -gt 0 ]]; do
    case $1 in
        --host-net) host_net=true; shift ;;
        --readonly) readonly_root=true; shift ;;
        -h|--help) echo "$usage"; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1; $usage" ;;
        *) break ;;
    esac
done
[[ $# -ge 1 ]] || die "$usage"
dir=$1; shift
command -v jq >/dev/null || die "jq not found: run bash scripts/setup.sh"

cache_dir=${BERTH_CACHE_DIR:-/var/cache/berth}
cache=$cache_dir/rootfs
mkdir -p "$cache_dir"
# (Re)build the cached rootfs when missing or older than the script or busybox;
# the lock keeps parallel callers (nextest) from building it twice.
{
    flock 9
    if [[ ! -f $cache.stamp || $here/mkrootfs.sh -nt $cache.stamp || /bin/busybox -nt $cache.stamp ]]; then
        bash "$here/mkrootfs.sh" "$cache"
        touch "$cache.stamp"
    fi
} 9>"$cache.lock"

mkdir -p "$dir"
if [[ -d $dir/rootfs ]]; then
    bash "$here/mkrootfs.sh" "$dir/rootfs"
else
    cp -a "$cache" "$dir/rootfs.tmp.$$"
    mv "$dir/rootfs.tmp.$$" "$dir/rootfs"
fi

if [[ $# -eq 0 ]]; then set -- sh; fi
# jq 1.6 would take a "-c" among --args as its own option (and mangles NULs):
# pass each arg as a named --arg and collect them in order.
named=()
for ((i = 1; i <= $#; i++)); do printf -v key argv%05d "$i"; named+=(--arg "$key" "${!i}"); done
jq --tab \
    "${named[@]}" \
    --argjson host_net "$host_net" \
    --argjson ro "$readonly_root" \
    '.process.args = [$ARGS.named | to_entries | sort_by(.key)[] | select(.key | startswith("argv")) | .value]
     | .root.readonly = $ro
     | if $host_net then .linux.namespaces |= map(select(.type != "network")) else . end' <"$here/config.template.json" >"$dir/config.json.tmp.$$"
mv -f "$dir/config.json.tmp.$$" "$dir/config.json"
