#!/usr/bin/env bash
# bench/net.sh — what networking costs (issue 5).
#
# Part 1, start latency of the default network: `run --rm busybox true` with `--network none` and
# with the default bridge, for berth (CLI → berthd) and docker (docker.io's dockerd, started here
# privately with its bridge on 10.213.0.1/24 and --iptables=false, so that it never touches the
# host's firewall nor berth's 172.17/16), in one hyperfine -N invocation per round. Prints each
# command's quietest median over ROUNDS rounds and the milliseconds the bridge adds, berth vs docker.
#
# Part 2, TCP throughput with iperf3 (-t SECS, each run under a timeout), as % of the host's
# loopback (iperf3 client and server on 127.0.0.1):
#   container → container on a user-defined network (server's address from inspect),
#   host → published port (127.0.0.1:PORT → the container's 5201).
# Same with docker when it is a peer. Traffic stays on loopback and in namespaces made here.
# The image: busybox's rootfs plus /usr/bin/iperf3 and what `ldd` lists, imported as
# berth-iperf:latest.
#
# Usage: bash bench/net.sh           (as root, after bash scripts/setup.sh; iperf3 is installed
#                                      with apt-get when missing)
# Env:   RUNS=30 WARMUP=3 ROUNDS=3 SECS=3 PEERS="docker"  TPUT_ROUNDS=3 SKIP_START=1, SKIP_TPUT=1
# Results (hyperfine JSON, the table) go to bench/results/net-*.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
runs=${RUNS:-30}
warmup=${WARMUP:-3}
rounds=${ROUNDS:-3}
secs=${SECS:-3}
peers=${PEERS:-docker}
results=$here/results
stamp=$(date +%Y%m%d-%H%M%S)
rootfs=${BERTH_TEST_ROOTFS:-/var/cache/berth/rootfs}
die() { echo "bench/net: $*" >&2; exit 1; }
has_peer() { [[ " $peers " == *" $1 "* ]]; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
for t in hyperfine jq curl; do command -v "$t" >/dev/null || die "$t not found: run bash scripts/setup.sh"; done
if ! command -v iperf3 >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iperf3 >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iperf3 >/dev/null; } \
        || die "iperf3 missing and apt-get install iperf3 failed"
fi
[[ -d $rootfs/bin ]] || die "no busybox rootfs at $rootfs: run bash scripts/setup.sh"
berth=$repo/target/release/berth
berthd=$repo/target/release/berthd
shim=$repo/target/shim/x86_64-unknown-linux-gnu/release/berth-shim
[[ -x $shim ]] || shim=$repo/target/release/berth-shim
for b in "$berth" "$berthd" "$shim"; do [[ -x $b ]] || die "$b missing: run bash scripts/setup.sh"; done
mkdir -p "$results"
log=$results/net-$stamp.log
txt=$results/net-$stamp.txt
: >"$log"

work=$(mktemp -d /tmp/berth-bench-net.XXXXXX)
pids=()
cleanup() {
    set +e
    for p in "${bg[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null; done
    for s in berth docker; do
        if [[ -S $work/$s.sock ]]; then
            DOCKER_HOST=unix://$work/$s.sock docker ps -aq 2>/dev/null | xargs -r env DOCKER_HOST="unix://$work/$s.sock" docker rm -f >/dev/null 2>&1
            DOCKER_HOST=unix://$work/$s.sock docker network rm benchnet >/dev/null 2>&1
        fi
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 1
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    pkill -f "berth-shim .*--state-root $work/" 2>/dev/null
    # dockerd and berthd leave their default bridges behind when they stop (berthd's: "bt" + the
    # FNV-1a 32 hash of its data root, with an nft table of the same name).
    ip link show bench-docker0 >/dev/null 2>&1 && ip link del bench-docker0
    local root=$work/berth h=$((0x811c9dc5)) i c br
    for ((i = 0; i < ${#root}; i++)); do
        printf -v c '%d' "'${root:i:1}"
        h=$(((h ^ c) * 0x01000193 & 0xffffffff))
    done
    printf -v br 'bt%08x' "$h"
    ip link show "$br" >/dev/null 2>&1 && ip link del "$br"
    nft list table inet "berth_$br" >/dev/null 2>&1 && nft delete table inet "berth_$br"
    grep -o " ${work}[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf --one-file-system "$work"
}
bg=()
trap cleanup EXIT

wait_sock() { # socket, what
    for _ in $(seq 1 200); do
        if curl -s --unix-socket "$1" http://x/_ping >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    die "$2 did not answer on $1 (log: $log)"
}

# The iperf3 image: busybox + iperf3 + its libraries and loader, paths as on the host.
img=$work/iperf-rootfs
cp -a "$rootfs" "$img"
copy_in() { mkdir -p "$img$(dirname "$1")"; cp -L "$1" "$img$1"; }
copy_in "$(command -v iperf3)"
for lib in $(ldd "$(command -v iperf3)" | grep -o '/[^ ]*'); do copy_in "$lib"; done
tar -C "$img" -c . >"$work/iperf.tar"

# berthd, private.
BERTH_SHIM=$shim "$berthd" -H "unix://$work/berth.sock" --data-root "$work/berth" >>"$log" 2>&1 &
pids+=($!)
disown "$!"
wait_sock "$work/berth.sock" berthd
export BERTH_HOST=unix://$work/berth.sock BERTH_NO_AUTOSTART=1
tar -C "$rootfs" -c . | "$berth" import - busybox:latest >/dev/null
"$berth" import "$work/iperf.tar" berth-iperf:latest >/dev/null

dk=""
if has_peer docker && command -v dockerd >/dev/null; then
    ip link add bench-docker0 type bridge && ip addr add 10.213.0.1/24 dev bench-docker0 && ip link set bench-docker0 up
    dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
        --pidfile "$work/docker.pid" --bridge=bench-docker0 --iptables=false --ip6tables=false \
        --default-address-pool base=10.214.0.0/16,size=24 >>"$log" 2>&1 &
    pids+=($!)
    disown "$!"
    wait_sock "$work/docker.sock" dockerd
    dk="docker -H unix://$work/docker.sock"
    tar -C "$rootfs" -c . | $dk import - busybox:latest >/dev/null
    $dk import "$work/iperf.tar" berth-iperf:latest >/dev/null
fi

: >"$txt"
if [[ ${SKIP_START:-0} != 1 ]]; then
    names=("berth none" "berth bridge")
    cmds=("$berth run --rm --network none busybox true" "$berth run --rm busybox true")
    if [[ -n $dk ]]; then
        names+=("docker none" "docker bridge")
        cmds+=("$dk run --rm --network none busybox true" "$dk run --rm busybox true")
    fi
    # Each command once, untimed: one that fails is reported and left out.
    ok_names=() ok_cmds=()
    for i in "${!cmds[@]}"; do
        # shellcheck disable=SC2086 # the command line is split into words on purpose
        if timeout 60 ${cmds[$i]} >>"$log" 2>&1; then
            ok_names+=("${names[$i]}") ok_cmds+=("${cmds[$i]}")
        else
            echo "bench/net: ${names[$i]} failed (see $log); left out" >&2
        fi
    done
    round_files=()
    n=${#ok_names[@]}
    ((n > 0)) || die "no run command works (see $log)"
    for ((round = 1; round <= rounds; round++)); do
        named=()
        for ((k = 0; k < n; k++)); do
            if ((round % 2)); then j=$k; else j=$((n - 1 - k)); fi
            named+=(-n "${ok_names[$j]}" "${ok_cmds[$j]}")
        done
        f=$results/net-$stamp-round$round.json
        round_files+=("$f")
        hyperfine -N --warmup "$warmup" --runs "$runs" --style basic --export-json "$f" "${named[@]}" >>"$log" 2>&1 \
            || { tail -20 "$log" >&2; die "hyperfine failed"; }
    done
    json=$results/net-$stamp.json
    jq -s '{quietest: ([.[].results[]] | group_by(.command)
            | map({command: .[0].command, median: (map(.median) | min)}))}' "${round_files[@]}" >"$json"
    rm -f "${round_files[@]}"
    median() { jq -r --arg n "$1" '.quietest[] | select(.command == $n) | .median * 1000' "$json"; }
    {
        printf 'run --rm busybox true: quietest of %s hyperfine medians, %s runs each\n' "$rounds" "$runs"
        printf '%-8s %14s %14s %14s\n' engine "none ms" "bridge ms" "bridge adds"
        for e in berth docker; do
            a=$(median "$e none") b=$(median "$e bridge")
            [[ -z $a && -z $b ]] && continue
            if [[ -n $a && -n $b ]]; then
                awk -v e="$e" -v a="$a" -v b="$b" 'BEGIN { printf "%-8s %14.1f %14.1f %11.1f ms\n", e, a, b, b - a }'
            else
                printf '%-8s %14s %14s %14s\n' "$e" "${a:--}" "${b:--}" -
            fi
        done
        [[ -n $dk ]] && echo "(docker: --iptables=false, so its bridge start does no iptables work)"
    } | tee -a "$txt"
fi

[[ ${SKIP_TPUT:-0} == 1 ]] && exit 0

# An iperf3 client command, tried up to 5 times (the server may not listen yet: a refused
# connection fails at once) → Gbit/s received, or nothing.
client_gbits() {
    local out g
    for _ in 1 2 3 4 5; do
        out=$(timeout $((secs + 30)) "$@" 2>>"$log") || true
        g=$(jq -r '.end.sum_received.bits_per_second // empty | . / 1e9' <<<"$out" 2>/dev/null) || g=""
        if [[ -n $g ]]; then echo "$g"; return 0; fi
        sleep 0.3
    done
    echo "$out" | tail -5 >>"$log"
}
port=$((20000 + RANDOM % 20000))
tput_rounds=${TPUT_ROUNDS:-3}

loopback_once() {
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >>"$log" 2>&1 &
    bg+=($!)
    client_gbits iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J
}

tput_engine() { # label, client command... → sets tp_cc, tp_hp (Gbit/s or empty)
    local label=$1; shift
    local c=("$@") srv ip
    echo "== $label" >>"$log"
    tp_cc="" tp_hp=""
    "${c[@]}" network create benchnet >>"$log" 2>&1 || { echo "$label: network create failed" >&2; return; }
    # container → container
    srv=$("${c[@]}" run -d --network benchnet berth-iperf:latest iperf3 -s 2>>"$log") || srv=""
    if [[ -n $srv ]]; then
        ip=$("${c[@]}" inspect -f '{{.NetworkSettings.Networks.benchnet.IPAddress}}' "$srv" 2>>"$log") || ip=""
        [[ -n $ip ]] && tp_cc=$(client_gbits "${c[@]}" run --rm --network benchnet berth-iperf:latest \
            iperf3 -c "$ip" -t "$secs" -J)
        "${c[@]}" rm -f "$srv" >/dev/null 2>&1
    fi
    # host → published port
    srv=$("${c[@]}" run -d --network benchnet -p "127.0.0.1:$((port + 1)):5201" berth-iperf:latest \
        iperf3 -s 2>>"$log") || srv=""
    if [[ -n $srv ]]; then
        tp_hp=$(client_gbits iperf3 -c 127.0.0.1 -p $((port + 1)) -t "$secs" -J)
        "${c[@]}" rm -f "$srv" >/dev/null 2>&1
    fi
    "${c[@]}" network rm benchnet >/dev/null 2>&1
}
median_of() { # values... (empty ones skipped) → median or nothing
    printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{v[NR]=$1} END { if (NR) print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2) }'
}
# TPUT_ROUNDS rounds; in each, loopback is measured right before the engines (the machine's
# loopback speed itself drifts by 2x at times), and the engines alternate their order.
loops=() b_cc=() b_hp=() d_cc=() d_hp=()
for ((r = 1; r <= tput_rounds; r++)); do
    loops+=("$(loopback_once)")
    order=(berth docker)
    ((r % 2)) || order=(docker berth)
    for e in "${order[@]}"; do
        if [[ $e == berth ]]; then
            tput_engine berth "$berth"; b_cc+=("$tp_cc"); b_hp+=("$tp_hp")
        elif [[ -n $dk ]]; then
            # shellcheck disable=SC2086
            tput_engine docker $dk; d_cc+=("$tp_cc"); d_hp+=("$tp_hp")
        fi
    done
done
loop=$(median_of "${loops[@]}")
[[ -n $loop ]] || die "loopback iperf3 failed (see $log)"
row() { # label, gbit/s or empty
    if [[ -n $2 ]]; then
        awk -v l="$1" -v g="$2" -v b="$loop" 'BEGIN { printf "%-34s %8.2f Gbit/s %6.0f%%\n", l, g, 100 * g / b }'
    else
        printf '%-34s %15s\n' "$1" failed
    fi
}
{
    printf '\nTCP throughput, iperf3 -t %s, median of %s rounds, as %% of loopback\n' "$secs" "$tput_rounds"
    row "host loopback (127.0.0.1)" "$loop"
    row "berth container→container" "$(median_of "${b_cc[@]}")"
    row "berth host→127.0.0.1:port" "$(median_of "${b_hp[@]}")"
    if [[ -n $dk ]]; then
        row "docker container→container" "$(median_of "${d_cc[@]}")"
        row "docker host→127.0.0.1:port" "$(median_of "${d_hp[@]}")"
    fi
    true
} | tee -a "$txt"
