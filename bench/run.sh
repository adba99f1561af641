#!/usr/bin/env bash
# bench/run.sh — the whole `run` path and idle density (issue 4, point 6).
#
# Part 1, start latency: `berth run --rm --network none busybox true` (CLI → berthd → berth-shim →
# container) side by side with `docker run --rm --network none` (docker.io's dockerd, started
# here privately), `podman run --rm --network none` (private storage) and bare `crun run` of a
# bundle, in one hyperfine -N invocation per round; each command's quietest median over ROUNDS
# rounds is printed with the ratios berth/crun, berth/docker, berth/podman.
# `berth (bridge)` is the same with berth's default network (netns + veth + address); bench/net.sh
# compares the default network's cost with docker's. berthd makes the next container of a
# `run --rm` seen again ahead of time (pre-started containers, on by default): `berth (cold)` is
# the same command on a second berthd started with --prestart=false, every run from scratch.
#
# Part 2, density: IDLE containers (`run -d busybox sleep 1000000`) started one after another
# with berth and with docker: total start time, per start, and memory per container as the drop
# of MemAvailable divided by IDLE (plus berth-shim's and containerd-shim's PSS each).
#
# Usage: bash bench/run.sh           (as root, after bash scripts/setup.sh)
# Env:   RUNS=30 WARMUP=3 ROUNDS=3 PACE=0.02 IDLE=1000 IDLE_DOCKER=$IDLE PEERS="docker podman crun"
#        SKIP_IDLE=1 to skip part 2, SKIP_START=1 to skip part 1.
# Results (hyperfine JSON, the table) go to bench/results/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
runs=${RUNS:-30}
warmup=${WARMUP:-3}
rounds=${ROUNDS:-3}
idle=${IDLE:-1000}
idle_docker=${IDLE_DOCKER:-$idle}
peers=${PEERS:-docker podman crun}
results=$here/results
stamp=$(date +%Y%m%d-%H%M%S)
rootfs=${BERTH_TEST_ROOTFS:-/var/cache/berth/rootfs}
die() { echo "bench/run: $*" >&2; exit 1; }
has_peer() { [[ " $peers " == *" $1 "* ]]; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
for t in hyperfine jq; do command -v "$t" >/dev/null || die "$t not found: run bash scripts/setup.sh"; done
[[ -d $rootfs/bin ]] || die "no busybox rootfs at $rootfs: run bash scripts/setup.sh"
berth=$repo/target/x86_64-unknown-linux-gnu/release/berth # static PIE (scripts/setup.sh)
[[ -x $berth ]] || berth=$repo/target/release/berth
berthd=$repo/target/release/berthd
shim=$repo/target/shim/x86_64-unknown-linux-gnu/release/berth-shim
[[ -x $shim ]] || shim=$repo/target/release/berth-shim
for b in "$berth" "$berthd" "$shim"; do [[ -x $b ]] || die "$b missing: run bash scripts/setup.sh"; done
mkdir -p "$results"
log=$results/run-$stamp.log
: >"$log"

work=$(mktemp -d /tmp/berth-bench-run.XXXXXX)
pids=()
cleanup() {
    set +e
    if [[ -S $work/berth.sock ]]; then
        DOCKER_HOST=unix://$work/berth.sock docker ps -aq 2>/dev/null | xargs -r -n 200 env DOCKER_HOST="unix://$work/berth.sock" docker rm -f >/dev/null 2>&1
    fi
    if [[ -S $work/cold.sock ]]; then kill "$(cat "$work/cold.pid" 2>/dev/null)" 2>/dev/null; fi
    if [[ -S $work/docker.sock ]]; then
        DOCKER_HOST=unix://$work/docker.sock docker ps -aq 2>/dev/null | xargs -r -n 200 env DOCKER_HOST="unix://$work/docker.sock" docker rm -f >/dev/null 2>&1
    fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 1
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    pkill -f "berth-shim .*--state-root $work/" 2>/dev/null
    # berthd leaves its default bridge and nft table behind when it stops (as dockerd does).
    for br in bench-berth0 bench-berthc; do
        ip link show "$br" >/dev/null 2>&1 && ip link del "$br"
        nft list table inet "berth_${br//-/_}" >/dev/null 2>&1 && nft delete table inet "berth_${br//-/_}"
    done
    podman --root "$work/podman" --runroot "$work/podman-run" rm -af >/dev/null 2>&1
    crun --root "$work/crun-root" delete --force bench-crun >/dev/null 2>&1
    grep -o " ${work}[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
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

# berthd, private.
BERTH_SHIM=$shim "$berthd" -H "unix://$work/berth.sock" --data-root "$work/berth" --bridge bench-berth0 >>"$log" 2>&1 &
pids+=($!)
disown "$!"
wait_sock "$work/berth.sock" berthd
export BERTH_HOST=unix://$work/berth.sock BERTH_NO_AUTOSTART=1
tar -C "$rootfs" -c . | "$berth" import - busybox:latest >/dev/null
bdocker() { DOCKER_HOST=unix://$work/berth.sock docker "$@"; }

# The same berth without pre-started containers: every run cold.
BERTH_SHIM=$shim "$berthd" -H "unix://$work/cold.sock" --data-root "$work/berth-cold" --bridge bench-berthc \
    --prestart=false >>"$log" 2>&1 &
echo $! >"$work/cold.pid"
pids+=($!)
disown "$!"
wait_sock "$work/cold.sock" "berthd --prestart=false"
tar -C "$rootfs" -c . | BERTH_HOST=unix://$work/cold.sock "$berth" import - busybox:latest >/dev/null

names=("berth run --rm" "berth (bridge)" "berth (cold)")
cmds=("$berth run --rm --network none busybox true" "$berth run --rm busybox true"
    "env BERTH_HOST=unix://$work/cold.sock $berth run --rm --network none busybox true")
if has_peer docker && command -v dockerd >/dev/null; then
    dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
        --pidfile "$work/docker.pid" --bridge=none --iptables=false >>"$log" 2>&1 &
    pids+=($!)
    disown "$!"
    wait_sock "$work/docker.sock" dockerd
    tar -C "$rootfs" -c . | DOCKER_HOST=unix://$work/docker.sock docker import - busybox:latest >/dev/null
    names+=("docker run --rm")
    cmds+=("docker -H unix://$work/docker.sock run --rm --network none busybox true")
fi
if has_peer podman && command -v podman >/dev/null; then
    printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' >"$work/containers.conf"
    export CONTAINERS_CONF=$work/containers.conf
    pod="podman --root $work/podman --runroot $work/podman-run --cgroup-manager cgroupfs --events-backend file"
    tar -C "$rootfs" -c . | $pod import - localhost/busybox:latest >/dev/null 2>>"$log"
    names+=("podman run --rm")
    cmds+=("$pod run --rm --network none localhost/busybox:latest true")
fi
if has_peer crun && command -v crun >/dev/null; then
    bash "$repo/scripts/mkbundle.sh" "$work/bundle" /bin/true >/dev/null
    names+=("crun run")
    cmds+=("crun --root $work/crun-root run --bundle $work/bundle bench-crun")
fi

if [[ ${SKIP_START:-0} != 1 ]]; then
# Each command once, untimed: a peer that fails is reported and left out.
ok_names=() ok_cmds=()
for i in "${!cmds[@]}"; do
    if timeout 60 ${cmds[$i]} >>"$log" 2>&1; then
        ok_names+=("${names[$i]}") ok_cmds+=("${cmds[$i]}")
    else
        echo "bench/run: ${names[$i]} failed (see $log); left out" >&2
    fi
done

n=${#ok_names[@]}
: >"$results/run-$stamp.txt"
# Two ways to run them, all commands alike: back to back (hyperfine's default: each run starts as
# the last ends, so what an engine does after a run competes with the next one), and paced (an
# untimed `sleep $PACE` before each run, as when a user or a script starts one container at a
# time: what a run left to do is done, the machine is idle when the next one starts).
pace=${PACE:-0.02}
for mode in back-to-back paced; do
    prep=()
    [[ $mode == paced ]] && prep=(--prepare "sleep $pace")
    round_files=()
    for ((round = 1; round <= rounds; round++)); do
        named=()
        for ((k = 0; k < n; k++)); do
            if ((round % 2)); then j=$k; else j=$((n - 1 - k)); fi
            named+=(-n "${ok_names[$j]}" "${ok_cmds[$j]}")
        done
        f=$results/run-$stamp-$mode-round$round.json
        round_files+=("$f")
        hyperfine -N --warmup "$warmup" --runs "$runs" "${prep[@]}" --style basic --export-json "$f" "${named[@]}" >>"$log" 2>&1 \
            || { tail -20 "$log" >&2; die "hyperfine failed"; }
    done
    json=$results/run-$stamp-$mode.json
    jq -s '{quietest: ([.[].results[]] | group_by(.command)
            | map({command: .[0].command, median: (map(.median) | min)}))}' "${round_files[@]}" >"$json"
    rm -f "${round_files[@]}"
    median() { jq -r --arg n "$1" '.quietest[] | select(.command == $n) | .median * 1000' "$json"; }
    ratio() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' || printf -- '-'; }
    b=$(median "berth run --rm")
    {
        if [[ $mode == paced ]]; then how="paced (untimed sleep $pace before each run)"; else how="back to back"; fi
        printf '
run --rm busybox true, --network none, %s: quietest of %s hyperfine medians, %s runs each\n' "$how" "$rounds" "$runs"
        printf '%-18s %10s %12s\n' command "median ms" "berth/this"
        for nm in "${ok_names[@]}"; do
            m=$(median "$nm")
            printf '%-18s %10.1f %12s\n' "$nm" "$m" "$(ratio "$b" "$m")"
        done
    } | tee -a "$results/run-$stamp.txt"
done
fi

[[ ${SKIP_IDLE:-0} == 1 ]] && exit 0

mem_avail() { echo $(($(awk '/MemAvailable/ {print $2}' /proc/meminfo) * 1024)); }
pss_of() { # pattern → average PSS in kB of matching processes
    local total=0 count=0
    for p in $(pgrep -f "$1"); do
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + v)); count=$((count + 1))
    done
    ((count)) && echo $((total / count)) || echo 0
}
idle_run() { # label count client...
    local label=$1 count=$2; shift 2
    sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
    local before t0 t1 after
    before=$(mem_avail)
    t0=$(date +%s%N)
    for ((i = 0; i < count; i++)); do
        "$@" run -d --network none busybox sleep 1000000 >/dev/null || die "$label: start $i failed"
    done
    t1=$(date +%s%N)
    sleep 2
    after=$(mem_avail)
    awk -v l="$label" -v n="$count" -v ns=$((t1 - t0)) -v mb=$((before - after)) \
        'BEGIN { printf "%-8s %6d containers: %8.2f s total, %7.1f ms per start, %6.2f MB per container\n", l, n, ns / 1e9, ns / 1e6 / n, mb / n / 1e6 }'
}
{
    printf '\n%s idle containers (sleep), started one by one\n' "$idle"
    idle_run berth "$idle" "$berth"
    printf '         berth-shim PSS each: %s kB\n' "$(pss_of "berth-shim .*--state-root $work/")"
    bdocker ps -aq | xargs -r -n 200 env DOCKER_HOST="unix://$work/berth.sock" docker rm -f >/dev/null
    if [[ -S $work/docker.sock ]]; then
        idle_run docker "$idle_docker" docker -H "unix://$work/docker.sock"
        printf '         containerd-shim PSS each: %s kB\n' "$(pss_of "containerd-shim-runc-v2 .*$work/")"
    fi
} | tee -a "$results/run-$stamp.txt"
