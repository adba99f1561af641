#!/usr/bin/env bash
# bench/conformance.sh — the OCI runtime-tools validation suite against crun,
# runc and berth-runc (issue 2, point 8). Prints pass/FAIL per test file for each
# runtime and the totals; keeps the TAP logs in bench/results/conformance-<time>/.
#
# The suite's code stays out of this repository. It is expected in
# RUNTIME_TOOLS_DIR (default /var/cache/berth/runtime-tools), a checkout of
# github.com/opencontainers/runtime-tools at 260e151 (the last commit that builds
# with Debian 12's Go 1.19), e.g.:
#   git clone https://github.com/opencontainers/runtime-tools /var/cache/berth/runtime-tools
#   git -C /var/cache/berth/runtime-tools checkout 260e151
# This script builds it there (`make runtimetest validation-executables`) and
# replaces the suite's rootfs-amd64.tar.gz (every test unpacks it as its bundle)
# with our busybox rootfs from scripts/mkrootfs.sh; the upstream tarball is kept
# as rootfs-amd64.tar.gz.upstream (CONFORMANCE_ROOTFS=upstream uses it instead).
#
# Usage: bash bench/conformance.sh [TEST...]     (as root; TEST = e.g. default kill)
# Env:   RUNTIMES="crun runc berth-runc"  TEST_TIMEOUT=60 (seconds per test file)
#        BERTH_RUNC=target/release/berth-runc
# Verdict per test file (several print more than one TAP stream, each with its
# own plan; a few print nothing or only "1..0" with an error comment):
#   pass   exit 0, no "not ok", as many results as the plans add up to, at least one
#   empty  exit 0, no TAP result at all: the file asserted nothing. Counted as
#          passed, as TAP consumers count a skipped file (that is how crun's 42 and
#          runc's 34 were counted), and shown apart; where crun's file asserted
#          something, "empty" is not a pass (the "short of crun" line)
#   FAIL   anything else; TIMEOUT when killed after TEST_TIMEOUT seconds
# Exit status: 0 (the table is the result).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
rt_dir=${RUNTIME_TOOLS_DIR:-/var/cache/berth/runtime-tools}
read -r -a runtimes <<<"${RUNTIMES:-crun runc berth-runc}"
test_timeout=${TEST_TIMEOUT:-60}
berth_runc=${BERTH_RUNC:-$repo/target/release/berth-runc}
stamp=$(date +%Y%m%d-%H%M%S)
out=$here/results/conformance-$stamp
die() { echo "conformance: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ -f $rt_dir/Makefile && -d $rt_dir/validation ]] \
    || die "no runtime-tools checkout in $rt_dir (set RUNTIME_TOOLS_DIR; see the comment at the top of $0)"
for t in go make tar timeout; do
    command -v "$t" >/dev/null || die "$t not found: run bash scripts/setup.sh"
done
mkdir -p "$out"

# --- build the suite (go caches make reruns cheap) ----------------------------
if ! make -C "$rt_dir" runtimetest validation-executables >"$out/build.log" 2>&1; then
    tail -20 "$out/build.log" >&2
    die "building runtime-tools in $rt_dir failed (log: $out/build.log)"
fi

# --- the rootfs every test unpacks --------------------------------------------
tarball=$rt_dir/rootfs-amd64.tar.gz
[[ -f $tarball.upstream ]] || cp -p "$tarball" "$tarball.upstream"
if [[ ${CONFORMANCE_ROOTFS:-berth} == upstream ]]; then
    cp -p "$tarball.upstream" "$tarball"
else
    rootfs=$(mktemp -d /tmp/berth-conformance-rootfs.XXXXXX)
    bash "$repo/scripts/mkrootfs.sh" "$rootfs"
    tar -C "$rootfs" --numeric-owner -czf "$tarball.new" .
    mv -f "$tarball.new" "$tarball"
    rm -rf "$rootfs"
fi

# --- which tests, which runtimes ----------------------------------------------
if [[ $# -gt 0 ]]; then tests=("$@"); else
    mapfile -t tests < <(cd "$rt_dir/validation" && for d in */; do d=${d%/}; [[ -f $d/$d.go ]] && echo "$d"; done)
fi
declare -A path=()
for r in "${runtimes[@]}"; do
    case $r in
        berth-runc) p=$berth_runc ;;
        */*) p=$r ;;
        *) p=$(command -v "$r" || true) ;;
    esac
    [[ -n $p && -x $p ]] || die "runtime $r not found (${p:-not on PATH})"
    path[$r]=$p
done

# Each test file: RUNTIME=<path> validation/<t>/<t>.t, from the suite's directory
# (it opens ./runtimetest and ./rootfs-amd64.tar.gz), with TMPDIR private to this
# run so the bundles a killed test leaves behind can be removed.
verdict() { # RC FILE: print pass, empty or FAIL
    awk -v rc="$1" '
        /^ok/ { ok++ } /^not ok/ { bad++ }
        /^1\.\.[0-9]+/ { sub(/^1\.\./, ""); plan += $0 + 0; plans++ }
        END {
            if (rc != 0 || bad > 0) print "FAIL"
            else if (ok == 0) print "empty"
            else if (plans == 0 || plan != ok) print "FAIL"
            else print "pass"
        }' "$2"
}
declare -A result=() passed=() empty=()
for r in "${runtimes[@]}"; do
    mkdir -p "$out/$r"
    passed[$r]=0 empty[$r]=0
    tmp=$(mktemp -d /tmp/berth-conformance.XXXXXX)
    for t in "${tests[@]}"; do
        exe=validation/$t/$t.t
        [[ -x $rt_dir/$exe ]] || { result[$r,$t]=missing; continue; }
        set +e
        (cd "$rt_dir" && TMPDIR=$tmp RUNTIME=${path[$r]} \
            timeout --kill-after=5 "$test_timeout" "./$exe") >"$out/$r/$t.tap" 2>"$out/$r/$t.err" </dev/null
        rc=$?
        set -e
        if [[ $rc -eq 124 || $rc -eq 137 ]]; then
            result[$r,$t]=TIMEOUT
        else
            result[$r,$t]=$(verdict "$rc" "$out/$r/$t.tap")
        fi
        case ${result[$r,$t]} in
            pass) passed[$r]=$((passed[$r] + 1)) ;;
            empty) passed[$r]=$((passed[$r] + 1)); empty[$r]=$((empty[$r] + 1)) ;;
        esac
        echo "exit $rc" >>"$out/$r/$t.err"
    done
    # Best effort: containers a failed or killed test left in the runtime's state.
    for id in $(timeout 10 "${path[$r]}" list -q 2>/dev/null || true); do
        timeout 10 "${path[$r]}" delete --force "$id" >/dev/null 2>&1 || true
    done
    # Some tests (rootfs propagation "shared") leave the container's mounts in
    # the host's mount namespace, under the bundle: unmount them, deepest first.
    awk -v t="$tmp/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r \
        | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$tmp" 2>/dev/null || true
done

# --- report -------------------------------------------------------------------
{
    printf '%-40s' "test file"
    for r in "${runtimes[@]}"; do printf ' %11s' "$r"; done
    echo
    for t in "${tests[@]}"; do
        printf '%-40s' "$t"
        for r in "${runtimes[@]}"; do printf ' %11s' "${result[$r,$t]}"; done
        echo
    done
    printf '%-40s' "passed of ${#tests[@]}"
    for r in "${runtimes[@]}"; do printf ' %11s' "${passed[$r]}"; done
    echo
    printf '%-40s' "  of which empty (asserted nothing)"
    for r in "${runtimes[@]}"; do printf ' %11s' "${empty[$r]}"; done
    echo
    # The goal (issue 2): pass wherever crun passes. An "empty" file only matches
    # an "empty" crun file: lost output must not look like a pass.
    if [[ -n ${path[crun]:-} ]]; then
        for r in "${runtimes[@]}"; do
            [[ $r == crun ]] && continue
            behind=()
            for t in "${tests[@]}"; do
                case ${result[crun,$t]},${result[$r,$t]} in
                    pass,pass | empty,pass | empty,empty) ;;
                    pass,* | empty,*) behind+=("$t(${result[$r,$t]})") ;;
                esac
            done
            echo "$r short of crun on ${#behind[@]}: ${behind[*]:-none}"
        done
    fi
    echo "runtime-tools $(cat "$rt_dir/VERSION" 2>/dev/null) in $rt_dir; rootfs ${CONFORMANCE_ROOTFS:-berth}; TAP logs: ${out#"$repo"/}"
} | tee "$out/summary.txt"
