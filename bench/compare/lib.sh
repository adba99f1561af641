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

# --- memory charged to cgroups: what an engine's processes and containers cost, whatever else runs ---
# The kernel charges every page a process faults in and most kernel objects it allocates (task
# structs, stacks, page tables, namespaces, mounts, sockets, slab) to the memory cgroup the process
# is in. An engine's daemon, helpers and CLI calls run in a memory cgroup of their own here and its
# containers each get one; the sum of what those hold, page cache left out (the kernel hands it
# back on demand, as MemAvailable counts it), is the engine's memory, untouched by other work on a
# shared machine. Not charged anywhere: the cgroups' own kernel structures (a v1 memory cgroup is
# ~150 kB) and sysfs/kernfs nodes, alike for every engine that makes the same cgroups.

# memcg_mode — "v1" (a memory hierarchy at /sys/fs/cgroup/memory), "v2" (cgroup2 with the memory
# controller at /sys/fs/cgroup), or "" (neither: nothing charged is measured)
memcg_mode() {
    if [[ -r /sys/fs/cgroup/memory/memory.stat ]]; then
        echo v1
    elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        echo v2
    fi
}
memcg_root() { case $(memcg_mode) in v1) echo /sys/fs/cgroup/memory ;; v2) echo /sys/fs/cgroup ;; esac; }

# memcg_join DIR — moves the calling (sub)shell into memory cgroup DIR (made if missing); call it in
# a subshell: ( memcg_join DIR && exec CMD ) — what CMD and its children allocate is charged there.
memcg_join() {
    [[ -n $1 ]] || return 0
    mkdir -p "$1" && echo "$BASHPID" >"$1/cgroup.procs"
}

# memcg_charged_kb DIR — what DIR and the cgroups below it hold, page cache excluded, in kB:
# v1: total_rss + total_shmem + memory.kmem.usage_in_bytes; v2: anon + shmem + kernel memory.
memcg_charged_kb() {
    local d=$1
    [[ -d $d ]] || { echo 0; return; }
    if [[ -r $d/memory.kmem.usage_in_bytes ]]; then
        awk -v k="$(cat "$d/memory.kmem.usage_in_bytes")" \
            '$1 == "total_rss" || $1 == "total_shmem" {s += $2} END {printf "%d\n", (s + k) / 1024}' "$d/memory.stat"
    else
        awk '$1 == "anon" || $1 == "shmem" {s += $2} $1 == "kernel" {k = $2}
             $1 ~ /^(kernel_stack|pagetables|sec_pagetables|percpu|sock|vmalloc|slab)$/ {o += $2}
             END {printf "%d\n", (s + (k ? k : o)) / 1024}' "$d/memory.stat"
    fi
}

# pid_memcg PID — the memory cgroup directory PID is in (empty if it is gone)
pid_memcg() {
    local root
    root=$(memcg_root) || return 0
    [[ -n $root ]] || return 0
    if [[ $root == /sys/fs/cgroup/memory ]]; then
        awk -F: -v r="$root" '$2 ~ /(^|,)memory(,|$)/ {print r $3; exit}' "/proc/$1/cgroup" 2>/dev/null
    else
        awk -F: -v r="$root" '$1 == "0" {print r $3; exit}' "/proc/$1/cgroup" 2>/dev/null
    fi
}

# memcgs_charged_kb BASE PID... — the charged kB of the distinct memory cgroups of PIDs that are
# not BASE or below it (BASE itself is measured as a whole), summed
memcgs_charged_kb() {
    local base=$1 p d t=0
    shift
    declare -A seen=()
    for p in "$@"; do
        d=$(pid_memcg "$p")
        [[ -n $d && $d != "$base" && $d != "$base"/* && -z ${seen[$d]:-} ]] || continue
        seen[$d]=1
        t=$((t + $(memcg_charged_kb "$d")))
    done
    echo "$t"
}

# memcg_remove DIR — removes DIR and the cgroups below it once their tasks are gone (≤ 5 s)
memcg_remove() {
    local i
    [[ -d $1 ]] || return 0
    for ((i = 0; i < 50; i++)); do
        find "$1" -depth -type d -exec rmdir {} + 2>/dev/null
        [[ -d $1 ]] || return 0
        sleep 0.1
    done
    say "cannot remove the cgroup $1: tasks are still inside"
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

# stop_pids PID... — SIGTERM, up to 5 s for them to go, then SIGKILL for what is left.
stop_pids() {
    local p alive
    for p in "$@"; do kill "$p" 2>/dev/null; done
    for _ in $(seq 1 50); do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in "$@"; do kill -9 "$p" 2>/dev/null; done
    return 0
}
