#!/usr/bin/env bash
# bench/compare/memwhere.sh — where the host memory of an idle container goes, per engine.
#
# Starts N idle `--network none` containers (`sleep`, as run.sh's density step does) on a private
# berthd, on Podman (cgroupfs manager, private storage, as run.sh runs it) and optionally on a
# private dockerd, and diffs what the kernel and the engines hold before and after:
#   /proc/meminfo (MemAvailable, Slab, SReclaimable, SUnreclaim, KernelStack, PageTables, Percpu,
#   Shmem, AnonPages, ...), the /proc/slabinfo caches that grew most, the daemons' RSS/PSS, the
#   helpers' and idle processes' PSS, cgroup directories per hierarchy (every v1 mount and the
#   cgroup2 one), mounts on the host and inside one container, the file systems a container has
#   its own instance of (tmpfs, proc, sysfs, devpts, mqueue), and its namespaces.
# Each engine's daemon, CLI calls and helpers run in a memory cgroup of their own (mw-PID/ENGINE in
# the v1 memory hierarchy) and its containers below it (--cgroup-parent /mw-PID/ENGINE/ct), so
# what the kernel charges to them (user pages and the kernel memory it accounts, memory.stat and
# memory.kmem.usage_in_bytes) is theirs alone, whatever else runs on this shared machine; the
# global figures (/proc/meminfo, slabinfo) also move with other people's work.
# Prints one table per metric: the change per container, per engine; raw snapshots stay in OUT.
#
# Usage: bash bench/compare/memwhere.sh            (as root; needs what run.sh installed)
#        berth's containers are started with the docker CLI (berth's CLI has no --cgroup-parent).
# Env:   N=200 ENGINES="berth podman" (docker too: ENGINES="berth podman docker") OUT=DIR BUILD=0
#        BERTHD=/path/berthd BERTH_SHIM=/path/berth-shim (default: target/release,
#        and the static shim in target/shim when it is there)
# Everything started is removed on exit, also on failure. Not a test: nothing asserts.
# shellcheck disable=SC2086 # the engines' command lines are split into words on purpose
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
n=${N:-200}
engines=${ENGINES:-berth podman}
[[ $(id -u) -eq 0 ]] || { echo "memwhere: must run as root" >&2; exit 1; }
work=$(mktemp -d /tmp/berth-memwhere.XXXXXX)
out=${OUT:-$work/out}
mkdir -p "$out"
log=$out/log
: >"$log"
raw=$out
# shellcheck source=lib.sh
source "$here/lib.sh"
rootfs=${BERTH_TEST_ROOTFS:-/var/cache/berth/rootfs}
[[ -x $rootfs/bin/busybox ]] || die "no busybox rootfs at $rootfs (run scripts/setup.sh)"
berthd=${BERTHD:-$repo/target/release/berthd}
shim=${BERTH_SHIM:-$repo/target/shim/x86_64-unknown-linux-gnu/release/berth-shim}
[[ -x $shim ]] || shim=$repo/target/release/berth-shim
idle_cmd="sleep 876543" # distinctive: the idle processes are found by their command line
mw=mw-$$                # this run's cgroup tree, in every hierarchy an engine creates it in
memcg=/sys/fs/cgroup/memory/$mw
[[ -d /sys/fs/cgroup/memory ]] || die "no v1 memory hierarchy at /sys/fs/cgroup/memory: the charged figures need one"
mkdir -p "$memcg"
# in_memcg ENGINE CMD... — runs CMD with its memory charged to ENGINE's cgroup
in_memcg() {
    local e=$1
    shift
    (memcg_join "$memcg/$e" && exec "$@")
}

daemon_pids=()
made_links=()
pod=""
cleanup() {
    set +e
    trap - EXIT INT TERM
    local s p
    for s in berth docker; do
        if [[ -S $work/$s.sock ]]; then
            DOCKER_HOST=unix://$work/$s.sock timeout 600 docker ps -aq 2>/dev/null \
                | xargs -r -n 100 timeout 300 env DOCKER_HOST="unix://$work/$s.sock" docker rm -f >/dev/null 2>&1
        fi
    done
    [[ -n $pod ]] && timeout 600 $pod rm -af -t 0 >/dev/null 2>&1
    stop_pids "${daemon_pids[@]}"
    for s in "${made_links[@]}"; do ip link show "$s" >/dev/null 2>&1 && ip link del "$s"; done
    [[ ${netavark_before:-1} == 0 ]] && netavark_remove
    nft list table inet berth_mwb0 >/dev/null 2>&1 && nft delete table inet berth_mwb0
    grep -o " ${work}[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    for s in /sys/fs/cgroup/*/"$mw"; do
        [[ -d $s ]] && find "$s" -depth -type d -exec rmdir {} + 2>/dev/null
        [[ -d $s ]] && say "left behind: $s (tasks still inside?)"
    done
    if [[ -z ${OUT:-} ]]; then
        cp -r "$out" "/tmp/memwhere-last" 2>/dev/null
        say "raw snapshots kept in /tmp/memwhere-last"
    fi
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tar -C "$rootfs" -c . >"$work/busybox.tar"

# --- the engines, started the way run.sh starts them -----------------------------------------------
declare -A cli=() dpat=() hpat=()
start_berth() {
    made_links+=(mwb0)
    (memcg_join "$memcg/berth" && BERTH_SHIM=$shim exec "$berthd" -H "unix://$work/berth.sock" \
        --data-root "$work/berth" --exec-root "$work/berth-run" --bridge mwb0 --bip 10.226.0.1/16) >>"$log" 2>&1 &
    daemon_pids+=($!)
    wait_sock "$work/berth.sock" || die "berthd did not answer (see $log)"
    # the docker CLI against berthd: berth's own CLI has no --cgroup-parent (its API has)
    cli[berth]="docker -H unix://$work/berth.sock"
    dpat[berth]="berthd -H unix://$work/"
    hpat[berth]="berth-shim .*--state-root $work/"
    in_memcg berth ${cli[berth]} import "$work/busybox.tar" busybox:latest >>"$log" 2>&1
}
start_podman() {
    printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[network]\ndefault_subnet = "10.227.0.0/16"\n' \
        >"$work/containers.conf"
    export CONTAINERS_CONF=$work/containers.conf
    ip link show podman0 >/dev/null 2>&1 || made_links+=(podman0)
    netavark_before=$(netavark_chains)
    pod="podman --root $work/podman --runroot $work/podman-run --tmpdir $work/podman-tmp --network-config-dir $work/podman-net --cgroup-manager cgroupfs --events-backend file"
    mkdir -p "$work/podman-net"
    cli[podman]=$pod
    dpat[podman]="^$" # no daemon
    hpat[podman]="conmon .*$work/"
    in_memcg podman $pod import "$work/busybox.tar" localhost/busybox:latest >>"$log" 2>&1
}
start_docker() {
    ip link add mwd0 type bridge && made_links+=(mwd0) && ip addr add 10.228.0.1/16 dev mwd0 && ip link set mwd0 up
    (memcg_join "$memcg/docker" && exec dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" \
        -H "unix://$work/docker.sock" --pidfile "$work/docker.pid" --bridge=mwd0 --iptables=false --ip6tables=false \
        --default-address-pool base=10.229.0.0/16,size=24) >>"$log" 2>&1 &
    daemon_pids+=($!)
    wait_sock "$work/docker.sock" || die "dockerd did not answer (see $log)"
    cli[docker]="docker -H unix://$work/docker.sock"
    dpat[docker]="(dockerd|containerd) .*$work/"
    hpat[docker]="containerd-shim-runc-v2 .*$work/"
    in_memcg docker ${cli[docker]} import "$work/busybox.tar" busybox:latest >>"$log" 2>&1
}

# --- snapshots ----------------------------------------------------------------------------------
sum_kb() { awk '{s += $1} END {print s + 0}'; }
snapshot() { # ENGINE TAG — everything this script diffs, into $out/ENGINE-TAG.*
    local e=$1 t=$2 f=$out/$1-$2 h d pids
    sync
    echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
    sleep 1
    {
        awk '{sub(":", "", $1); print $1 "\t" $2}' /proc/meminfo
        echo "MemAvailable_median	$(mem_avail_median_kb)"
        echo "host_mounts	$(wc -l </proc/self/mountinfo)"
        echo "host_tmpfs_mounts	$(awk '{for (i = 7; i <= NF; i++) if ($i == "-") {print $(i + 1); break}}' /proc/self/mountinfo | grep -c '^tmpfs$')"
        echo "host_overlay_mounts	$(grep -c ' - overlay ' /proc/self/mountinfo || true)"
        for h in /sys/fs/cgroup/*/; do
            d=${h%/}
            mountpoint -q "$d" || continue
            echo "cgroup_dirs_${d##*/}	$(find "$d" -type d 2>/dev/null | wc -l)"
            echo "cgroup_dirs_mw_${d##*/}	$(find "$d/$mw/$e" -type d 2>/dev/null | wc -l)"
        done
        mapfile -t pids < <(pids_matching "${dpat[$e]}")
        echo "daemon_rss_kb	$(rss_kb "${pids[@]}" | sum_kb)"
        echo "daemon_pss_kb	$(pss_kb "${pids[@]}" | sum_kb)"
        mapfile -t pids < <(pids_matching "${hpat[$e]}")
        echo "helper_pss_kb	$(pss_kb "${pids[@]}" | sum_kb)"
        echo "helper_procs	${#pids[@]}"
        mapfile -t pids < <(pids_matching "^$idle_cmd\$")
        echo "idle_pss_kb	$(pss_kb "${pids[@]}" | sum_kb)"
        echo "idle_procs	${#pids[@]}"
        echo "all_procs	$(printf '%s\n' /proc/[0-9]* | wc -l)"
        echo "all_threads	$(printf '%s\n' /proc/[0-9]*/task/* | wc -l)"
        echo "memcg_usage_kb	$(($(cat "$memcg/$e/memory.usage_in_bytes" 2>/dev/null || echo 0) / 1024))"
        echo "memcg_kmem_kb	$(($(cat "$memcg/$e/memory.kmem.usage_in_bytes" 2>/dev/null || echo 0) / 1024))"
        awk '$1 ~ /^total_(rss|cache|shmem|mapped_file|kernel|kernel_stack|pagetables|percpu|slab|slab_reclaimable|slab_unreclaimable|sock)$/ {print "memcg_" $1 "_kb\t" int($2 / 1024)}' \
            "$memcg/$e/memory.stat" 2>/dev/null
        echo "memcg_ct_usage_kb	$(($(cat "$memcg/$e/ct/memory.usage_in_bytes" 2>/dev/null || echo 0) / 1024))"
        echo "memcg_ct_kmem_kb	$(($(cat "$memcg/$e/ct/memory.kmem.usage_in_bytes" 2>/dev/null || echo 0) / 1024))"
        echo "nr_inodes	$(awk '{print $1 - $2}' /proc/sys/fs/inode-nr)"
        echo "nr_dentries	$(awk '{print $1}' /proc/sys/fs/dentry-state)"
        echo "nr_files	$(awk '{print $1}' /proc/sys/fs/file-nr)"
    } >"$f.tsv"
    # slab caches: kB held (slabs x pages per slab x page size)
    awk 'NR > 2 {print $1 "\t" $15 * $6 * 4}' /proc/slabinfo | sort >"$f.slab"
}

# one container's own view: mounts, file-system instances it alone has, namespaces
container_view() { # ENGINE
    local e=$1 pid
    pid=$(pids_matching "^$idle_cmd\$" | head -1)
    [[ -n $pid ]] || return 0
    cp "/proc/$pid/mountinfo" "$out/$e-container-mountinfo"
    cp "/proc/$pid/cgroup" "$out/$e-container-cgroup"
    {
        echo "mounts	$(wc -l <"/proc/$pid/mountinfo")"
        # a superblock (dev number) that the host's mount table does not show is the container's own
        awk '{for (i = 7; i <= NF; i++) if ($i == "-") {print $3 "\t" $(i + 1); break}}' "/proc/$pid/mountinfo" | sort -u >"$work/sb.c"
        awk '{print $3}' /proc/self/mountinfo | sort -u >"$work/sb.h"
        awk 'NR == FNR {h[$1] = 1; next} !($1 in h) {print $2}' "$work/sb.h" "$work/sb.c" | sort | uniq -c \
            | awk '{print "own_fs_" $2 "\t" $1}'
        for ns in /proc/"$pid"/ns/*; do
            [[ $(readlink "$ns") == "$(readlink "/proc/self/ns/${ns##*/}")" ]] || echo "own_ns_${ns##*/}	1"
        done
    } >"$out/$e-container.tsv"
}

measure() { # ENGINE
    local e=$1 i t0 t1 img=busybox:latest
    [[ $e == podman ]] && img=localhost/busybox:latest
    say "$e: warm-up container (image, daemon caches), then $n idle containers"
    # shellcheck disable=SC2206 # the CLI's words
    local run_=(${cli[$e]} run -d --network none --cgroup-parent "/$mw/$e/ct")
    in_memcg "$e" "${run_[@]}" --name mw-warm "$img" true >>"$log" 2>&1 || die "$e: the warm-up container failed: $(tail -3 "$log")"
    sleep 1
    in_memcg "$e" ${cli[$e]} rm -f mw-warm >>"$log" 2>&1 || true
    snapshot "$e" before
    t0=$(date +%s)
    # shellcheck disable=SC2016 # expanded by the inner bash
    i=$(in_memcg "$e" bash -c 'for ((i = 0; i < $1; i++)); do
            "${@:3}" --name "mw-$i" $2 >/dev/null 2>>"$LOG" || { echo "start $((i + 1)) failed: $(tail -2 "$LOG")" >&2; break; }
        done; echo $i' - "$n" "$img $idle_cmd" "${run_[@]}")
    t1=$(date +%s)
    say "$e: $i started in $((t1 - t0)) s"
    echo "$i" >"$out/$e-count"
    sleep 2
    snapshot "$e" after
    container_view "$e"
    say "$e: removing"
    if [[ $e == podman ]]; then
        in_memcg "$e" $pod rm -af -t 0 >/dev/null 2>>"$log" || true
    else
        ${cli[$e]} ps -aq | in_memcg "$e" xargs -r -n 100 ${cli[$e]} rm -f >/dev/null 2>>"$log" || true
    fi
    sleep 2
    snapshot "$e" removed
}

export LOG=$log
for e in $engines; do
    "start_$e"
    measure "$e"
done

# --- the report ---------------------------------------------------------------------------------
/usr/bin/python3 "$here/memwhere_report.py" "$out" $engines
