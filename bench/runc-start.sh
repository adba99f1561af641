#!/usr/bin/env bash
# bench/runc-start.sh — start latency of an OCI runtime's `run` (issue 2, point 7).
#
# `RUNTIME --root DIR run --bundle B ID` of a busybox /bin/true bundle, with a new
# network namespace and without one (host network), for berth-runc, crun and runc,
# side by side in one hyperfine invocation per round, plus the bare namespace
# floor (`unshare -pmiuf [-n] --mount-proc chroot ROOTFS /bin/true`), all with
# hyperfine -N (no shell). Prints each command's quietest median over ROUNDS
# rounds in ms and the ratios berth-runc/crun and runc/crun; writes the rounds'
# hyperfine JSON, the table and hyperfine's log to bench/results/.
#
# Usage: bash bench/runc-start.sh          (as root, after bash scripts/setup.sh)
# Env:   RUNS=40 WARMUP=5 ROUNDS=5          hyperfine runs, warm-up runs, rounds
#        BERTH_RUNC=target/x86_64-unknown-linux-gnu/release/berth-runc (the static build setup.sh makes)
#
# Each `run` removes its container when /bin/true exits (runc, crun and the runc
# contract do this unless --detach/--keep), so a fixed id per command is reused;
# a --prepare step force-deletes a leftover, untimed. Each runtime is first
# checked once with `sh -c 'echo $$ $(hostname)'` (it must print "1 berth": a
# new pid and uts namespace in our rootfs); one that fails is reported with its
# error and left out of the timing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
runs=${RUNS:-40}
warmup=${WARMUP:-5}
rounds=${ROUNDS:-5}
berth_runc=${BERTH_RUNC:-$repo/target/x86_64-unknown-linux-gnu/release/berth-runc}
results=$here/results
stamp=$(date +%Y%m%d-%H%M%S)
json=$results/runc-start-$stamp.json
die() { echo "runc-start: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
for t in hyperfine jq crun runc unshare; do
    command -v "$t" >/dev/null || die "$t not found: run bash scripts/setup.sh"
done
mkdir -p "$results"

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
cleanup() {
    for r in crun runc berth; do rm -rf "/tmp/bench-root-$r"; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

bash "$repo/scripts/mkbundle.sh" "$work/net" /bin/true
bash "$repo/scripts/mkbundle.sh" --host-net "$work/host" /bin/true
bash "$repo/scripts/mkbundle.sh" "$work/check" sh -c 'echo $$ $(hostname)'
rootfs=$work/net/rootfs

declare -A bin=([crun]=$(command -v crun) [runc]=$(command -v runc) [berth]=$berth_runc)
declare -A label=([crun]=crun [runc]=runc [berth]=berth-runc)
declare -A failed=()
ok=()
for r in berth crun runc; do
    root=/tmp/bench-root-$r
    if [[ ! -x ${bin[$r]} ]]; then
        failed[$r]="${bin[$r]} not found (bash scripts/setup.sh builds it)"
        continue
    fi
    set +e
    out=$(timeout 20 "${bin[$r]}" --root "$root" run --bundle "$work/check" "bench-check-$r" 2>"$work/err")
    rc=$?
    set -e
    "${bin[$r]}" --root "$root" delete --force "bench-check-$r" >/dev/null 2>&1 || true
    if [[ $rc -ne 0 ]]; then
        failed[$r]="exit $rc: $(head -c 300 "$work/err" | tr '\n' ' ')"
    elif [[ $out != "1 berth" ]]; then
        if [[ -z $out ]]; then out="nothing"; else out="'$(head -c 100 <<<"$out" | tr '\n' ' ')'"; fi
        failed[$r]="exit 0 but printed $out instead of '1 berth' (no container ran)"
    else
        ok+=("$r")
    fi
done

# One benchmark = name, command, untimed preparation.
names=("floor net" "floor host-net")
cmds=("unshare -pmiufn --mount-proc chroot $rootfs /bin/true" "unshare -pmiuf --mount-proc chroot $rootfs /bin/true")
preps=(true true)
for r in "${ok[@]}"; do
    for mode in net host; do
        id=bench-$r-$mode
        names+=("${label[$r]} ${mode/host/host-net}")
        cmds+=("${bin[$r]} --root /tmp/bench-root-$r run --bundle $work/$mode $id")
        preps+=("sh -c '${bin[$r]} --root /tmp/bench-root-$r delete --force $id >/dev/null 2>&1 || true'")
    done
done
# hyperfine runs one command's runs back to back, so a burst of load from
# elsewhere lands on whichever command is running: ROUNDS rounds, alternating
# the order, and each command's quietest (lowest) median is reported.
n=${#names[@]}
round_files=()
for ((round = 1; round <= rounds; round++)); do
    prep=() named=()
    for ((k = 0; k < n; k++)); do
        if ((round % 2)); then j=$k; else j=$((n - 1 - k)); fi
        prep+=(--prepare "${preps[$j]}")
        named+=(-n "${names[$j]}" "${cmds[$j]}")
    done
    f=$results/runc-start-$stamp-round$round.json
    round_files+=("$f")
    hyperfine -N --warmup "$warmup" --runs "$runs" --style basic --export-json "$f" \
        "${prep[@]}" "${named[@]}" >>"$results/runc-start-$stamp.log" 2>&1 \
        || { cat "$results/runc-start-$stamp.log" >&2; die "hyperfine failed"; }
done
jq -s '{rounds: ., quietest: ([.[].results[]] | group_by(.command)
        | map({command: .[0].command, median: (map(.median) | min)}))}' \
    "${round_files[@]}" >"$json"
rm -f "${round_files[@]}"

# name -> quietest median in ms
median() { jq -r --arg n "$1" '.quietest[] | select(.command == $n) | .median * 1000' "$json"; }
fmt() { [[ -n $1 ]] && printf '%.1f' "$1" || printf -- '-'; }
ratio() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' || printf -- '-'; }
{
    printf 'OCI runtime "run" of a busybox /bin/true bundle: quietest of %s hyperfine medians, %s runs (%s warm-up) each\n' "$rounds" "$runs" "$warmup"
    printf '%-9s %8s %8s %8s %11s %13s %10s\n' mode floor crun runc berth-runc berth-runc/crun runc/crun
    for mode in net host-net; do
        f=$(median "floor $mode"); c=$(median "crun $mode"); r=$(median "runc $mode"); b=$(median "berth-runc $mode")
        printf '%-9s %8s %8s %8s %11s %15s %10s\n' "$mode" "$(fmt "$f")" "$(fmt "$c")" "$(fmt "$r")" "$(fmt "$b")" \
            "$(ratio "$b" "$c")" "$(ratio "$r" "$c")"
    done
    echo "(ms; net = new network namespace, host-net = none; floor = unshare + chroot, no runtime)"
    for r in berth crun runc; do
        [[ -n ${failed[$r]:-} ]] && echo "${label[$r]} FAILED, not timed: ${failed[$r]}"
    done
    echo "json: ${json#"$repo"/}"
} | tee "$results/runc-start-$stamp.txt"
