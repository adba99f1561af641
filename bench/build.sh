#!/usr/bin/env bash
# bench/build.sh — Dockerfile builds (issue 7, point 6): the same Dockerfiles, bench/build/<case>/
# (Dockerfile + context), built side by side in one run by
#   - berth:   `berth build` against a berthd started here on its own data root;
#   - docker:  `docker build`, the classic builder (DOCKER_BUILDKIT=0), against a private dockerd
#              (docker.io's, started here as bench/run.sh does);
#   - buildah: `buildah bud --layers` (Debian's buildah), its own storage root in the work dir,
#              --isolation oci (runc; BUILDAH_ISOLATION=chroot for the chroot mode, which only
#              allows the host network);
# each from the same local busybox image (imported into each from the busybox rootfs), with the
# RUN steps on no network (--network none; buildah chroot: host).
#   cold: --no-cache with the base image present;  warm: an unchanged rebuild (all cached).
# hyperfine runs each (case, mode) with all engines in one invocation; the medians and the ratios
# berth/peer are printed, and the goal "unchanged rebuild of ten-steps < 100 ms" is checked.
#
# Usage: bash bench/build.sh           (as root, after bash scripts/setup.sh)
# Env:   RUNS=10 WARMUP=2 PEERS="docker buildah" CASES="ten-steps multi-stage"
#        BUILDAH_ISOLATION=oci|chroot BUILDAH_DRIVER=overlay|vfs
# Results (hyperfine JSON, the table) go to bench/results/. Everything it starts (daemons, mounts,
# bridge, storage) is removed on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
runs=${RUNS:-10}
warmup=${WARMUP:-2}
peers=${PEERS:-docker buildah}
isolation=${BUILDAH_ISOLATION:-oci}
driver=${BUILDAH_DRIVER:-overlay}
results=$here/results
stamp=$(date +%Y%m%d-%H%M%S)
rootfs=${BERTH_TEST_ROOTFS:-/var/cache/berth/rootfs}
bridge=bbuild0
die() { echo "bench/build: $*" >&2; exit 1; }
has_peer() { [[ " $peers " == *" $1 "* ]]; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
for t in hyperfine jq tar; do command -v "$t" >/dev/null || die "$t not found: run bash scripts/setup.sh"; done
[[ -d $rootfs/bin ]] || die "no busybox rootfs at $rootfs: run bash scripts/setup.sh"
berth=$repo/target/release/berth
berthd=$repo/target/release/berthd
shim=$repo/target/shim/x86_64-unknown-linux-gnu/release/berth-shim
[[ -x $shim ]] || shim=$repo/target/release/berth-shim
for b in "$berth" "$berthd" "$shim"; do [[ -x $b ]] || die "$b missing: run bash scripts/setup.sh"; done
if [[ -n ${CASES:-} ]]; then
    read -r -a cases <<<"$CASES"
else
    cases=()
    for d in "$here"/build/*/; do cases+=("$(basename "$d")"); done
fi
for c in "${cases[@]}"; do [[ -f $here/build/$c/Dockerfile ]] || die "no bench/build/$c/Dockerfile"; done
mkdir -p "$results"
log=$results/build-$stamp.log
: >"$log"

work=$(mktemp -d /tmp/berth-bench-build.XXXXXX)
pids=()
buildah_cmd=(buildah --root "$work/buildah" --runroot "$work/buildah-run" --storage-driver "$driver")
cleanup() {
    set +e
    for s in berth docker; do
        if [[ -S $work/$s.sock ]]; then
            docker -H "unix://$work/$s.sock" ps -aq 2>/dev/null \
                | xargs -r docker -H "unix://$work/$s.sock" rm -f >/dev/null 2>&1
        fi
    done
    [[ -d $work/buildah ]] && "${buildah_cmd[@]}" rm -a >/dev/null 2>&1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for _ in $(seq 1 100); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    # What the daemons started for this work dir (shims, containerd) and left: by their command
    # line, which names the work dir (unique to this run).
    for d in /proc/[0-9]*; do
        if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF "$work/"; then kill -9 "${d#/proc/}" 2>/dev/null; fi
    done
    grep -o " ${work}[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    ip link show "$bridge" >/dev/null 2>&1 && ip link del "$bridge"
    nft list table inet "berth_$bridge" >/dev/null 2>&1 && nft delete table inet "berth_$bridge"
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

wait_sock() { # socket, what
    for _ in $(seq 1 200); do
        if curl -s --unix-socket "$1" http://x/_ping >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    die "$2 did not answer on $1 (log: $log)"
}

# The contexts are copied: no engine writes into the repository.
mkdir -p "$work/ctx"
for c in "${cases[@]}"; do cp -a "$here/build/$c" "$work/ctx/$c"; done
tar -C "$rootfs" -cf "$work/busybox.tar" .
path_env='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# berthd, private.
BERTH_SHIM=$shim "$berthd" -H "unix://$work/berth.sock" --data-root "$work/berth" --bridge "$bridge" >>"$log" 2>&1 &
pids+=($!)
disown "$!"
wait_sock "$work/berth.sock" berthd
export BERTH_NO_AUTOSTART=1
"$berth" -H "unix://$work/berth.sock" import -c "$path_env" -c 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null

engines=(berth)
declare -A cold warm
for c in "${cases[@]}"; do
    cold[berth,$c]="$berth -H unix://$work/berth.sock build -q --network none --no-cache -t bench-$c $work/ctx/$c"
    warm[berth,$c]="$berth -H unix://$work/berth.sock build -q --network none -t bench-$c $work/ctx/$c"
done

export DOCKER_BUILDKIT=0
if has_peer docker && command -v dockerd >/dev/null; then
    dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
        --pidfile "$work/docker.pid" --bridge=none --iptables=false >>"$log" 2>&1 &
    pids+=($!)
    disown "$!"
    wait_sock "$work/docker.sock" dockerd
    docker -H "unix://$work/docker.sock" import -c "$path_env" -c 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null
    engines+=(docker)
    for c in "${cases[@]}"; do
        cold[docker,$c]="docker -H unix://$work/docker.sock build -q --network none --no-cache -t bench-$c $work/ctx/$c"
        warm[docker,$c]="docker -H unix://$work/docker.sock build -q --network none -t bench-$c $work/ctx/$c"
    done
fi

if has_peer buildah && command -v buildah >/dev/null; then
    b=("${buildah_cmd[@]}")
    if ctr=$("${b[@]}" from scratch 2>>"$log") \
        && "${b[@]}" add "$ctr" "$work/busybox.tar" / >/dev/null 2>>"$log" \
        && "${b[@]}" config --cmd sh --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr" 2>>"$log" \
        && "${b[@]}" commit -q "$ctr" docker.io/library/busybox:latest >/dev/null 2>>"$log" \
        && "${b[@]}" rm "$ctr" >/dev/null 2>>"$log"; then
        net=(--network none)
        [[ $isolation == chroot ]] && net=()
        engines+=(buildah)
        for c in "${cases[@]}"; do
            base="${b[*]} bud --isolation $isolation ${net[*]} --pull-never --layers -q -t bench-$c"
            cold[buildah,$c]="$base --no-cache $work/ctx/$c"
            warm[buildah,$c]="$base $work/ctx/$c"
        done
    else
        echo "bench/build: buildah could not import busybox (see $log); left out" >&2
    fi
fi

# Each engine builds each case once, untimed (this also fills the warm caches); an engine that
# fails a case is reported and left out of that case.
declare -A ok
for c in "${cases[@]}"; do
    for e in "${engines[@]}"; do
        if timeout 300 ${warm[$e,$c]} >>"$log" 2>&1 && timeout 300 ${warm[$e,$c]} >>"$log" 2>&1; then
            ok[$e,$c]=1
        else
            echo "bench/build: $e failed to build $c (see $log); left out" >&2
        fi
    done
done

json=$results/build-$stamp.json
echo '[]' >"$json"
for c in "${cases[@]}"; do
    for mode in cold warm; do
        named=()
        for e in "${engines[@]}"; do
            [[ -n ${ok[$e,$c]:-} ]] || continue
            if [[ $mode == cold ]]; then cmd=${cold[$e,$c]}; else cmd=${warm[$e,$c]}; fi
            named+=(-n "$e" "$cmd")
        done
        ((${#named[@]})) || continue
        f=$work/hf-$c-$mode.json
        hyperfine -N --warmup "$warmup" --runs "$runs" --style basic --export-json "$f" "${named[@]}" >>"$log" 2>&1 \
            || { tail -20 "$log" >&2; die "hyperfine failed on $c $mode"; }
        jq --arg c "$c" --arg m "$mode" --slurpfile r "$f" \
            '. + [$r[0].results[] | {case: $c, mode: $m, engine: .command, median_ms: (.median * 1000), runs: (.times | length)}]' \
            "$json" >"$json.tmp" && mv "$json.tmp" "$json"
    done
done

median() { jq -r --arg c "$1" --arg m "$2" --arg e "$3" '.[] | select(.case == $c and .mode == $m and .engine == $e) | .median_ms' "$json"; }
ratio() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' || printf -- '-'; }
fmt() { [[ -n $1 ]] && awk -v a="$1" 'BEGIN { printf "%.1f", a }' || printf -- '-'; }
{
    printf '\nDockerfile builds: median ms of %s runs (hyperfine, %s warmup); docker = classic builder, buildah = bud --layers --isolation %s (%s)\n' \
        "$runs" "$warmup" "$isolation" "$driver"
    printf '%-12s %-5s %10s %10s %10s %14s %15s %8s\n' case mode berth docker buildah berth/docker berth/buildah fastest
    for c in "${cases[@]}"; do
        for mode in cold warm; do
            b=$(median "$c" "$mode" berth)
            dk=$(median "$c" "$mode" docker)
            bh=$(median "$c" "$mode" buildah)
            fastest=yes
            for p in "$dk" "$bh"; do
                [[ -n $b && -n $p ]] && awk -v a="$b" -v b="$p" 'BEGIN { exit !(a >= b) }' && fastest=no
            done
            [[ -n $b ]] || fastest=-
            printf '%-12s %-5s %10s %10s %10s %14s %15s %8s\n' "$c" "$mode" "$(fmt "$b")" "$(fmt "$dk")" "$(fmt "$bh")" \
                "$(ratio "$b" "$dk")" "$(ratio "$b" "$bh")" "$fastest"
        done
    done
    w=$(median ten-steps warm berth)
    if [[ -n $w ]]; then
        if awk -v a="$w" 'BEGIN { exit !(a < 100) }'; then verdict=met; else verdict="NOT met"; fi
        printf '\ngoal: unchanged rebuild of ten-steps < 100 ms: berth %.1f ms — %s\n' "$w" "$verdict"
    fi
} | tee "$results/build-$stamp.txt"
