#!/usr/bin/env bash
# bench/shim-memory.sh — the memory each idle container's helper process costs, side by side in
# one run: berth-shim vs containerd-shim-runc-v2 (a private containerd + ctr, runc as the
# runtime), and conmon when podman is installed. N idle `sleep` containers each; prints the
# median PSS per helper process (from /proc/PID/smaps_rollup) and the ratios to berth-shim.
#
# Usage: bash bench/shim-memory.sh            (as root; N=20 by default)
# Env:   N=20  BERTH_SHIM=target/shim/x86_64-unknown-linux-gnu/release/berth-shim
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
n=${N:-20}
shim=${BERTH_SHIM:-$repo/target/shim/x86_64-unknown-linux-gnu/release/berth-shim}
[[ -x $shim ]] || shim=$repo/target/release/berth-shim
rootfs=${BERTH_TEST_ROOTFS:-/var/cache/berth/rootfs}
die() { echo "shim-memory: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ -x $shim ]] || die "no berth-shim: run bash scripts/setup.sh"
[[ -d $rootfs ]] || die "no rootfs at $rootfs: run bash scripts/setup.sh"

work=$(mktemp -d /tmp/berth-shim-mem.XXXXXX)
ctd_pid=
cleanup() {
    set +e
    for s in "$work"/berth/s*/sock; do
        [[ -S $s ]] && printf '{"type":"kill","signal":9}\n' | timeout 2 python3 -c '
import socket, sys
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); c.sendall(sys.stdin.buffer.read()); c.recv(64)' "$s"
    done
    if [[ -n $ctd_pid ]]; then
        for id in $(ctr -a "$work/ctd.sock" -n bench tasks ls -q 2>/dev/null); do
            ctr -a "$work/ctd.sock" -n bench tasks kill -s SIGKILL "$id" >/dev/null 2>&1
        done
        sleep 1
        for id in $(ctr -a "$work/ctd.sock" -n bench containers ls -q 2>/dev/null); do
            ctr -a "$work/ctd.sock" -n bench tasks delete -f "$id" >/dev/null 2>&1
            ctr -a "$work/ctd.sock" -n bench containers delete "$id" >/dev/null 2>&1
        done
        kill "$ctd_pid" 2>/dev/null; wait "$ctd_pid" 2>/dev/null
    fi
    grep -o " ${work}[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$work"
}
trap cleanup EXIT

median_pss() { # pids... → median PSS in kB
    for p in "$@"; do awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null; done \
        | sort -n | awk '{a[NR]=$1} END{if (NR) print a[int((NR+1)/2)]; else print "nan"}'
}

# --- berth-shim -----------------------------------------------------------------
mkdir -p "$work/berth/b"
cp -a "$rootfs" "$work/berth/b/rootfs"
jq '.process.args = ["sleep", "100000"]' "$repo/scripts/config.template.json" >"$work/berth/b/config.json"
for i in $(seq 1 "$n"); do
    # The malloc setting berthd gives its shims (containers/shim.rs: no per-thread cache).
    GLIBC_TUNABLES=glibc.malloc.tcache_count=0 "$shim" --id "mem$$-$i" --bundle "$work/berth/b" --state-root "$work/berth/state" \
        --dir "$work/berth/s$i" --log "$work/berth/l$i.log" 3>"$work/berth/ready$i"
    # The launcher returns at once; the detached shim writes its ready line when the
    # container runs.
    for _ in $(seq 1 100); do [[ -s $work/berth/ready$i ]] && break; sleep 0.05; done
    grep -q '"pid"' "$work/berth/ready$i" || die "berth-shim $i: $(cat "$work/berth/ready$i")"
done
sleep 1
mapfile -t berth_pids < <(pgrep -f -- "--id mem$$-" | while read -r p; do
    [[ $(awk '{print $4}' "/proc/$p/stat") == 1 ]] && echo "$p"; done)
berth_pss=$(median_pss "${berth_pids[@]}")

# --- containerd-shim-runc-v2 ------------------------------------------------------
ctd_pss=nan ctd_note=""
if command -v containerd >/dev/null && command -v umoci >/dev/null; then
    cat >"$work/ctd.toml" <<EOF
version = 2
root = "$work/ctd-root"
state = "$work/ctd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/ctd.sock"
EOF
    containerd --config "$work/ctd.toml" >"$work/ctd.log" 2>&1 &
    ctd_pid=$!
    for _ in $(seq 1 100); do [[ -S $work/ctd.sock ]] && break; sleep 0.1; done
    # An OCI image of the same rootfs, made with umoci, imported into containerd.
    umoci init --layout "$work/img" >/dev/null
    umoci new --image "$work/img:latest" >/dev/null
    umoci unpack --image "$work/img:latest" "$work/ub" >/dev/null
    cp -a "$rootfs/." "$work/ub/rootfs/"
    umoci repack --image "$work/img:latest" "$work/ub" >/dev/null
    tar -C "$work/img" -cf "$work/img.tar" .
    if ctr -a "$work/ctd.sock" -n bench images import --base-name localhost/busybox "$work/img.tar" \
        >"$work/import.log" 2>&1; then
        ref=$(ctr -a "$work/ctd.sock" -n bench images ls -q | head -1)
        for i in $(seq 1 "$n"); do
            ctr -a "$work/ctd.sock" -n bench run -d "$ref" "mem$i" sleep 100000 >/dev/null
        done
        sleep 1
        mapfile -t ctd_pids < <(pgrep -f "containerd-shim-runc-v2 -namespace bench")
        ctd_pss=$(median_pss "${ctd_pids[@]}")
    else
        ctd_note="image import failed: $(tail -1 "$work/import.log")"
    fi
else
    ctd_note="containerd or umoci not installed"
fi

conmon_note="podman is not installed here (shared/PEERS.md measured conmon at ~370 kB)"
command -v podman >/dev/null && conmon_note="podman present but not measured by this script yet"

printf 'idle containers: %s each; median PSS per helper process\n' "$n"
printf '%-28s %10s %8s\n' helper "PSS kB" "ratio"
printf '%-28s %10s %8s\n' berth-shim "$berth_pss" "1.00x"
if [[ $ctd_pss != nan ]]; then
    printf '%-28s %10s %8s\n' containerd-shim-runc-v2 "$ctd_pss" \
        "$(awk -v a="$ctd_pss" -v b="$berth_pss" 'BEGIN{printf "%.2fx", a/b}')"
else
    printf '%-28s %10s   (%s)\n' containerd-shim-runc-v2 - "$ctd_note"
fi
printf '%-28s %10s   (%s)\n' conmon - "$conmon_note"
