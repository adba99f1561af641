# bench/compare/lib.sh — helpers of bench/compare/run.sh (sourced; needs $work, $raw, $log set).
# Generic enough for the other benches to source: each function names what it measures and
# touches nothing outside what it is given.
# shellcheck shell=bash disable=SC2154 # $work, $raw, $log, ... are set by run.sh

say() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "bench/compare: $*" >&2; exit 1; }

# ensure_debs PKG... — apt-get install the packages that are not installed yet (idempotent; no
# service started: Debian's policy-rc.d convention says no, as scripts/setup.sh does).
ensure_debs() {
    local p status missing=() made_policy=0
    for p in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
        [[ $status == ii* ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    say "installing ${missing[*]}"
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1 \
        || { apt-get update -qq >>"$log" 2>&1 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; } \
        || { ((made_policy)) && rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed (see $log)"; }
    ((made_policy)) && rm -f /usr/sbin/policy-rc.d
    return 0
}

# wait_sock SOCKET — true once a Docker-API daemon answers /_ping on SOCKET (≤ 20 s).
wait_sock() {
    local i
    for ((i = 0; i < 400; i++)); do
        curl -s --max-time 1 --unix-socket "$1" http://x/_ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# wait_file_grep FILE PATTERN SECONDS — true once FILE contains PATTERN.
wait_file_grep() {
    local i n=$(($3 * 20))
    for ((i = 0; i < n; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

mem_avail_kb() { awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }
# mem_avail_median_kb — the median of 5 samples 0.2 s apart (other processes come and go).
mem_avail_median_kb() {
    local i
    for ((i = 0; i < 5; i++)); do mem_avail_kb; sleep 0.2; done | median
}

# pss_kb PID... — one line per PID still alive: its PSS in kB (smaps_rollup).
pss_kb() {
    local p
    for p in "$@"; do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null; done
}
rss_kb() {
    local p
    for p in "$@"; do awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null; done
}

# port_free PORT — true when nothing listens on 127.0.0.1:PORT or the wildcard address (TCP).
port_free() { [[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# free_port FROM — the first port from FROM up that nothing listens on (the machine is shared:
# another run's server or a port reservation may hold a port this run picked at random).
free_port() {
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}

# median — of the numbers on stdin (one a line), or nothing when there are none.
median() {
    sort -g | awk '{v[NR] = $1} END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# du_kb PATH... — disk blocks in kB used under the paths, not crossing into other file systems
# (a container's merged overlay is a mount of its own and would count the image again).
du_kb() {
    local p t=0 k
    for p in "$@"; do
        [[ -e $p ]] || continue
        k=$(du -skx "$p" 2>/dev/null | awk '{print $1}')
        t=$((t + ${k:-0}))
    done
    echo "$t"
}

# pids_matching REGEX — the PIDs whose full command line matches (pgrep -f), one a line.
pids_matching() { pgrep -f -- "$1" || true; }

# netavark_chains — how many iptables lines name NETAVARK (podman's netavark leaves its chains and
# jumps behind when its last container goes).
netavark_chains() { iptables-save 2>/dev/null | grep -c NETAVARK || true; }

# netavark_remove — removes netavark's jumps and chains (only call it when there were none before).
netavark_remove() {
    local t rule chain
    for t in nat filter; do
        iptables -t "$t" -S 2>/dev/null | grep -- '-j NETAVARK' | grep -v '^-A NETAVARK' | while read -r rule; do
            eval "iptables -t $t ${rule/#-A/-D}" 2>/dev/null
        done
        for chain in $(iptables -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ {print $2}'); do
            iptables -t "$t" -F "$chain" 2>/dev/null
        done
        for chain in $(iptables -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ {print $2}'); do
            iptables -t "$t" -X "$chain" 2>/dev/null
        done
    done
    return 0
}

# fail SECTION PEER REASON... — records why a peer could not be measured in a section; the
# report lists every such line (a failed peer is never dropped silently).
fail() {
    local section=$1 peer=$2
    shift 2
    printf '%s\t%s\t%s\n' "$section" "$peer" "$(printf '%s' "$*" | tr '\n\t' '  ' | cut -c1-400)" >>"$raw/failures.tsv"
    say "$peer: $section failed: $*"
}

# iperf_gbits ARGS... — runs `iperf3 -c ARGS -J` (up to 5 tries: the server may not listen yet)
# and prints the received Gbit/s, or nothing.
iperf_gbits() {
    local out g i
    for ((i = 0; i < 5; i++)); do
        out=$(timeout $((secs + 30)) iperf3 -c "$@" -t "$secs" -J 2>>"$log") || true
        g=$(jq -r '.end.sum_received.bits_per_second // empty | . / 1e9' <<<"$out" 2>/dev/null) || g=""
        if [[ -n $g ]]; then echo "$g"; return 0; fi
        sleep 0.3
    done
    tail -3 <<<"$out" >>"$log"
}
