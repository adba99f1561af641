#!/usr/bin/env bash
# bench/compare/run.sh — containers vs VMs, measured side by side in one run (issue 8):
# berth, Docker (docker.io, a private dockerd), Podman, bare crun, and a QEMU guest (Debian's
# kernel + a busybox initramfs built here) as microvm and as q35, under KVM when a guest boots
# under it here, else under TCG (labelled so).
#
#   1. start latency: `run --rm busybox true` (default network and --network none), serial,
#      RUNS runs x ROUNDS rounds with hyperfine back to back, and RUNS runs paced (an untimed
#      `sleep 0.02` before each); VM: boot to init and power off, VM_RUNS runs;
#      QEMU alone (paused, no guest) to its QMP greeting; time to the first HTTP reply of a fresh
#      busybox httpd (published on 127.0.0.1; VM: user-net hostfwd), HTTP_RUNS runs.
#   2. density: N idle instances (`sleep`) started one after another (VMs: VM_N idle guests, and
#      VM_N paused QEMUs under KVM): total start time, MemAvailable drop per instance, PSS of each
#      helper (berth-shim, containerd-shim, conmon, qemu), CPU over IDLE_SECS from /proc/stat.
#   3. footprint: disk used by the busybox image and per instance; the VM's kernel + initramfs.
#   4. work inside: the same static binary (guest/work.c: an integer loop, a memory copy) on the
#      host, in each container and in the guest, interleaved (host, berth, docker, podman, crun,
#      vm, host, ...; WORK_ROUNDS rounds), each run compared with the host runs around it;
#      iperf3 through each default network and published port vs host loopback.
#   5. output in bench/compare/results/STAMP/: table.md (medians, ratios to berth, goals, the
#      published figures beside ours), results.json, start-latency.svg, memory.svg, raw/, log.
#      PUBLISH=1 also copies them to bench/compare/latest/ (what README.md shows).
#
# Usage: bash bench/compare/run.sh      (as root; installs what is missing from Debian packages,
#                                        builds berth in release)
# Env:   N=1000 (idle containers per engine; N_BERTH, N_DOCKER, N_PODMAN, N_CRUN override)
#        VM_N=10 RUNS=20 ROUNDS=2 VM_RUNS=20 HTTP_RUNS=10 IDLE_SECS=10 KVM_TIMEOUT=20
#        WORK_ROUNDS=9 CPU_ITER=100000000 CPU_REPS=3 MEM_MIB=128 MEM_REPS=40 SECS=3 TPUT_ROUNDS=3
#        PEERS="berth docker podman crun vm"  SKIP="start http density work net"  BUILD=0
#        DENSITY_NET=none (or "default": idle containers on each engine's default network)
# Traffic stays on loopback and in namespaces made here. Everything started is removed on exit,
# also on failure. Not a test: nothing asserts on time.

# The engines' command lines (cli[PEER], $pod, $crun_run, $idle_cmd) are split into words on
# purpose:
# shellcheck disable=SC2086
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=vm.sh
source "$here/vm.sh"

n_default=${N:-1000}
declare -A n_idle=([berth]=${N_BERTH:-$n_default} [docker]=${N_DOCKER:-$n_default}
    [podman]=${N_PODMAN:-$n_default} [crun]=${N_CRUN:-$n_default})
vm_n=${VM_N:-10}
runs=${RUNS:-20}
rounds=${ROUNDS:-2}
vm_runs=${VM_RUNS:-20}
http_runs=${HTTP_RUNS:-10}
idle_secs=${IDLE_SECS:-10}
kvm_timeout=${KVM_TIMEOUT:-20}
work_rounds=${WORK_ROUNDS:-9}
cpu_iter=${CPU_ITER:-100000000}
cpu_reps=${CPU_REPS:-3}
mem_mib=${MEM_MIB:-128}
mem_reps=${MEM_REPS:-40}
secs=${SECS:-3}
tput_rounds=${TPUT_ROUNDS:-3}
peers=${PEERS:-berth docker podman crun vm}
skip=${SKIP:-}
density_net=${DENSITY_NET:-none}
has_peer() { [[ " $peers " == *" $1 "* ]]; }
skipped() { [[ " $skip " == *" $1 "* ]]; }
ok_peer() { [[ -n ${up[$1]:-} ]]; } # set up and answering

[[ $(id -u) -eq 0 ]] || die "must run as root"
py=/usr/bin/python3 # Debian's, with python3-matplotlib (not a pyenv shim that comes first on PATH)
stamp=$(date +%Y%m%d-%H%M%S)
out=$here/results/$stamp
raw=$out/raw
log=$out/log
mkdir -p "$raw"
: >"$log"
: >"$raw/failures.tsv"
say "results in ${out#"$repo"/}; log: ${log#"$repo"/}"

# --- set-up: packages, hugetlb, rootfs (scripts/setup.sh without its build), the guest kernel ---
SETUP_SKIP_BUILD=1 bash "$repo/scripts/setup.sh" >>"$log" 2>&1 || die "scripts/setup.sh failed (see $log)"
ensure_debs qemu-system-x86 linux-image-amd64 python3-matplotlib cpio gcc libc6-dev jq curl hyperfine iperf3 busybox-static
rootfs=${BERTH_TEST_ROOTFS:-/var/cache/berth/rootfs}
[[ -x $rootfs/bin/busybox ]] || die "no busybox rootfs at $rootfs"

if [[ ${BUILD:-1} == 1 ]]; then
    say "building berth (release)"
    [[ -d $HOME/.cargo/bin ]] && PATH=$HOME/.cargo/bin:$PATH
    (cd "$repo" && cargo build --quiet --release -p berth-engine -p berth-cli -p berth-runtime --bins) >>"$log" 2>&1 \
        || say "cargo build failed (see $log): using the binaries already in target/ (built $(stat -c %y "$repo/target/release/berthd" 2>/dev/null | cut -d. -f1))"
    # berth-shim as shipped (scripts/setup.sh step 4): static, not position-independent.
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        cargo build --quiet --release --target x86_64-unknown-linux-gnu --target-dir target/shim \
        -p berth-runtime --bin berth-shim) >>"$log" 2>&1 || say "static berth-shim build failed (see $log)"
fi
berth=$repo/target/release/berth
berthd=$repo/target/release/berthd
shim=$repo/target/shim/x86_64-unknown-linux-gnu/release/berth-shim
[[ -x $shim ]] || shim=$repo/target/release/berth-shim

work=$(mktemp -d /tmp/berth-compare.XXXXXX)
# Each peer's daemon, CLI calls and helpers run in a memory cgroup of their own (lib.sh: memcg_*):
# what they and their containers hold is measured there, whatever else runs on the machine.
memcg_kind=$(memcg_mode)
cg_cmp=""
if [[ -n $memcg_kind ]]; then
    cg_cmp=$(memcg_root)/berth-compare-$$
    mkdir -p "$cg_cmp"
    [[ $memcg_kind == v2 ]] && echo +memory >"$cg_cmp/cgroup.subtree_control"
fi
work_cg=/berth-compare-work-$$ # berth's cgroup parent in the work step (see work_in)
cg_of() { [[ -n $cg_cmp ]] && echo "$cg_cmp/$1"; return 0; } # PEER → its memory cgroup, if any
declare -A up=() # peer → "1" once it answers
daemon_pids=()
made_links=()
cleanup() {
    set +e
    trap - EXIT INT TERM
    say "cleaning up"
    local s p
    for s in berth docker; do
        if [[ -S $work/$s.sock ]]; then
            DOCKER_HOST=unix://$work/$s.sock timeout 600 docker ps -aq 2>/dev/null \
                | xargs -r -n 100 timeout 300 env DOCKER_HOST="unix://$work/$s.sock" docker rm -f >/dev/null 2>&1
        fi
    done
    [[ -n ${pod:-} ]] && timeout 600 $pod rm -af -t 0 >/dev/null 2>&1
    if [[ -d $work/crun-root ]]; then
        for s in $(crun --root "$work/crun-root" list -q 2>/dev/null); do
            crun --root "$work/crun-root" delete --force "$s" >/dev/null 2>&1
        done
    fi
    for p in "$work"/vm/*.pid; do
        [[ -f $p ]] && kill -9 "$(cat "$p")" 2>/dev/null
    done
    pkill -9 -f -- "-serial file:$work/" 2>/dev/null # VMs this run started, by their log path
    stop_pids "${daemon_pids[@]}"
    pkill -9 -f "berth-shim .*--state-root $work/" 2>/dev/null
    pkill -9 -f "containerd-shim-runc-v2 .*$work/" 2>/dev/null
    pkill -9 -f "conmon .*$work/" 2>/dev/null
    for s in "${made_links[@]}"; do ip link show "$s" >/dev/null 2>&1 && ip link del "$s"; done
    [[ ${netavark_before:-1} == 0 ]] && netavark_remove
    nft list table inet berth_cmpb0 >/dev/null 2>&1 && nft delete table inet berth_cmpb0
    grep -o " ${work}[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    [[ -n $cg_cmp ]] && memcg_remove "$cg_cmp"
    # The work step's cgroup parent, in every hierarchy (empty once berthd stopped).
    for d in /sys/fs/cgroup/*"$work_cg" /sys/fs/cgroup"$work_cg"; do [[ -d $d ]] && rmdir "$d" 2>/dev/null; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the binaries and images every peer runs ---------------------------------------------------
gcc -O2 -static -o "$work/work" "$here/guest/work.c" >>"$log" 2>&1 || die "cannot build guest/work.c (see $log)"
tar -C "$rootfs" -c . >"$work/busybox.tar"
tools=$work/tools-rootfs
cp -a "$rootfs" "$tools"
cp "$work/work" "$tools/work"
copy_in() { mkdir -p "$tools$(dirname "$1")"; cp -L "$1" "$tools$1"; }
copy_in "$(command -v iperf3)"
for lib in $(ldd "$(command -v iperf3)" | grep -o '/[^ ]*'); do copy_in "$lib"; done
tar -C "$tools" -c . >"$work/tools.tar"
idle_cmd="sleep 987654" # distinctive, so that the idle processes can be found by name

# --- meta ----------------------------------------------------------------------------------------
ver() { "$@" 2>/dev/null | head -1 | tr -d '\n' || true; }
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg host "$(hostname)" \
    --arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" --argjson cpus "$(nproc)" \
    --argjson mem_kb "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)" --arg kernel "$(uname -r)" \
    --arg os "$(. /etc/os-release && echo "$PRETTY_NAME")" --arg loadavg "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg berth "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null)$(git -C "$repo" diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')" \
    --arg docker "$(ver dockerd --version)" --arg podman "$(ver podman --version)" --arg crun "$(ver crun --version)" \
    --arg qemu "$(ver qemu-system-x86_64 --version)" --arg hyperfine "$(ver hyperfine --version)" \
    --argjson n "$(jq -n --argjson b "${n_idle[berth]}" --argjson d "${n_idle[docker]}" --argjson p "${n_idle[podman]}" --argjson c "${n_idle[crun]}" '{berth:$b,docker:$d,podman:$p,crun:$c}')" \
    --argjson vm_n "$vm_n" --argjson runs "$runs" --argjson rounds "$rounds" --argjson vm_runs "$vm_runs" \
    --argjson http_runs "$http_runs" --argjson idle_secs "$idle_secs" --arg density_net "$density_net" \
    --argjson cpu_iter "$cpu_iter" --argjson mem_mib "$mem_mib" --argjson secs "$secs" \
    '{date: $date, host: $host, cpu: $cpu, cpus: $cpus, mem_kb: $mem_kb, kernel: $kernel, os: $os,
      loadavg_at_start: $loadavg, versions: {berth: $berth, docker: $docker, podman: $podman, crun: $crun,
      qemu: $qemu, hyperfine: $hyperfine}, n_idle: $n, vm_n: $vm_n, runs: $runs, rounds: $rounds,
      vm_runs: $vm_runs, http_runs: $http_runs, idle_secs: $idle_secs, density_net: $density_net,
      cpu_iter: $cpu_iter, mem_mib: $mem_mib, iperf_secs: $secs}' >"$raw/meta.json"

# --- peers -----------------------------------------------------------------------------------
# Each engine: a private daemon (or private storage), its CLI in cli[PEER], then the same two
# images imported: busybox (the disk it costs is the image footprint) and cmp-tools (busybox +
# /work + iperf3 and its libraries).
declare -A cli=() img=() tools_img=() data=()
pod=""

start_berth() {
    [[ -x $berth && -x $berthd && -x $shim ]] || { echo "berth binaries missing in target/ (cargo build failed, see $log)"; return 1; }
    # Its default bridge on a subnet of its own; berthd's nft table for it is removed on exit.
    made_links+=(cmpb0)
    (memcg_join "$(cg_of berth)" && BERTH_SHIM=$shim exec "$berthd" -H "unix://$work/berth.sock" \
        --data-root "$work/berth" --bridge cmpb0 --bip 10.216.0.1/16) >>"$log" 2>&1 &
    daemon_pids+=($!)
    wait_sock "$work/berth.sock" || { echo "berthd did not answer on $work/berth.sock: $(tail -2 "$log")"; return 1; }
    cli[berth]="$berth -H unix://$work/berth.sock" data[berth]="$work/berth"
}
start_docker() {
    command -v dockerd >/dev/null || { echo "dockerd not installed"; return 1; }
    # Its bridge made here on a subnet of its own, and --iptables=false: the host's firewall is
    # not touched (published ports go through docker-proxy).
    ip link show cmpd0 >/dev/null 2>&1 \
        || { ip link add cmpd0 type bridge && made_links+=(cmpd0) && ip addr add 10.217.0.1/16 dev cmpd0 \
            && ip link set cmpd0 up; } || { echo "cannot make the bridge cmpd0"; return 1; }
    (memcg_join "$(cg_of docker)" && exec dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" \
        -H "unix://$work/docker.sock" --pidfile "$work/docker.pid" --bridge=cmpd0 --iptables=false \
        --ip6tables=false --default-address-pool base=10.219.0.0/16,size=24) >>"$log" 2>&1 &
    daemon_pids+=($!)
    wait_sock "$work/docker.sock" || { echo "dockerd did not answer: $(tail -2 "$log")"; return 1; }
    cli[docker]="docker -H unix://$work/docker.sock" data[docker]="$work/docker $work/docker-exec"
}
start_podman() {
    command -v podman >/dev/null || { echo "podman not installed"; return 1; }
    # rlimits within root's hard limit here (shared/PEERS.md); its default network on a subnet
    # of its own; storage, state and network configs in $work.
    printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[network]\ndefault_subnet = "10.218.0.0/16"\n' \
        >"$work/containers.conf"
    export CONTAINERS_CONF=$work/containers.conf
    ip link show podman0 >/dev/null 2>&1 || made_links+=(podman0)
    netavark_before=$(netavark_chains) # its firewall chains: removed on exit if they are ours
    pod="podman --root $work/podman --runroot $work/podman-run --tmpdir $work/podman-tmp --network-config-dir $work/podman-net --cgroup-manager cgroupfs --events-backend file"
    mkdir -p "$work/podman-net"
    cli[podman]=$pod data[podman]="$work/podman $work/podman-run $work/podman-tmp"
}
import_images() { # PEER — sets img[PEER], tools_img[PEER]; records the busybox image's disk use
    local p=$1 before after b=busybox:latest t=cmp-tools:latest
    [[ $p == podman ]] && b=localhost/busybox:latest t=localhost/cmp-tools:latest
    # shellcheck disable=SC2086 # data[] holds a list of directories
    before=$(du_kb ${data[$p]})
    ${cli[$p]} import "$work/busybox.tar" "$b" >>"$log" 2>&1 || { echo "import of busybox failed: $(tail -1 "$log")"; return 1; }
    # shellcheck disable=SC2086
    after=$(du_kb ${data[$p]})
    printf '%s\t%s\n' "$p" "$((after - before))" >>"$raw/image-kb.tsv"
    ${cli[$p]} import "$work/tools.tar" "$t" >>"$log" 2>&1 || { echo "import of cmp-tools failed: $(tail -1 "$log")"; return 1; }
    img[$p]=$b tools_img[$p]=$t
}
for p in berth docker podman; do
    has_peer "$p" || continue
    say "starting $p"
    # (not in a subshell: the start functions set cli[], data[] and daemon_pids)
    if "start_$p" >"$work/reason" 2>&1 && import_images "$p" >"$work/reason" 2>&1; then
        up[$p]=1
    else
        fail setup "$p" "$(cat "$work/reason")"
    fi
done
# crun: bundles (scripts/mkbundle.sh) of the busybox rootfs; it has no images and no network of
# its own (a bundle's new network namespace holds only lo).
crun_run="crun --root $work/crun-root run"
if has_peer crun; then
    if command -v crun >/dev/null; then
        bash "$repo/scripts/mkbundle.sh" "$work/b-true" /bin/true >>"$log" 2>&1
        printf '%s\t%s\n' crun "$(du_kb "$work/b-true/rootfs")" >>"$raw/image-kb.tsv"
        if out_=$(timeout 30 $crun_run --bundle "$work/b-true" cmp-check 2>&1); then
            up[crun]=1
        else
            fail setup crun "crun run of a /bin/true bundle failed: $out_"
        fi
    else
        fail setup crun "crun not installed"
    fi
fi
vm_accel=tcg
if has_peer vm; then
    say "building the VM guest; trying KVM (≤ ${kvm_timeout} s per try)"
    if vm_build_guest; then
        printf '%s\t%s\n' vm "$((($(stat -c %s "$vm_kernel") + $(stat -c %s "$vm_base")) / 1024))" >>"$raw/image-kb.tsv"
        vm_probe_kvm
        vm_probe_vmm
        jq -n --arg accel "$vm_accel" --arg reason "$vm_kvm_reason" --arg kernel "$vm_kernel" --arg vmm "$vm_vmm_accel" \
            --argjson kernel_kb "$(($(stat -c %s "$vm_kernel") / 1024))" --argjson initrd_kb "$(($(stat -c %s "$vm_base") / 1024))" \
            --argjson tools_kb "$(($(stat -c %s "$vm_tools") / 1024))" \
            '{accel: $accel, kvm_reason: $reason, vmm_accel: $vmm, kernel: $kernel, kernel_kb: $kernel_kb, initramfs_kb: $initrd_kb,
              tools_initramfs_kb: $tools_kb}' >"$raw/vm.json"
        up[vm]=1
    else
        fail setup vm "no /boot/vmlinuz-*-amd64 (linux-image-amd64)"
    fi
fi
# A guest step's time limit: generous under TCG (emulation is ~10x slower than the host).
vm_limit=60
[[ $vm_accel == tcg ]] || vm_limit=$kvm_timeout
vm_label() { echo "vm-$1"; } # vm-microvm, vm-q35; the accelerator is in raw/vm.json

# --- 1. start latency ----------------------------------------------------------------------------
if ! skipped start; then
    say "start latency: run --rm true, ${runs} runs x ${rounds} rounds"
    names=() cmds=()
    for p in berth docker podman; do
        ok_peer "$p" || continue
        names+=("$p default" "$p none")
        cmds+=("${cli[$p]} run --rm ${img[$p]} true" "${cli[$p]} run --rm --network none ${img[$p]} true")
    done
    if ok_peer crun; then names+=("crun none"); cmds+=("$crun_run --bundle $work/b-true cmp-true"); fi
    # Each command once, untimed: one that fails is reported and not timed.
    ok_names=() ok_cmds=()
    for i in "${!cmds[@]}"; do
        # shellcheck disable=SC2086 # the command line is split into words on purpose
        if out_=$(timeout 60 ${cmds[$i]} 2>&1); then
            ok_names+=("${names[$i]}") ok_cmds+=("${cmds[$i]}")
        else
            fail start "${names[$i]% *}" "${names[$i]}: $out_"
        fi
    done
    n=${#ok_names[@]}
    for ((round = 1; round <= rounds && n > 0; round++)); do
        named=()
        for ((k = 0; k < n; k++)); do
            if ((round % 2)); then j=$k; else j=$((n - 1 - k)); fi
            named+=(-n "${ok_names[$j]}" "${ok_cmds[$j]}")
        done
        # -i: a run that fails is kept with its exit code; the report counts it, not its time.
        hyperfine -N -i --warmup 3 --runs "$runs" --style basic --export-json "$raw/start-round$round.json" \
            "${named[@]}" >>"$log" 2>&1 || fail start all "hyperfine round $round failed: $(tail -2 "$log")"
    done
    # Paced: an untimed `sleep 0.02` before each run, as when one container is started at a time.
    # Back to back, each run also pays for the previous run's aftermath (its teardown; berth's
    # pre-start of the next container) on this 2-CPU machine: that is throughput, this is latency.
    if ((n > 0)); then
        named=()
        for ((k = 0; k < n; k++)); do named+=(-n "${ok_names[$k]}" "${ok_cmds[$k]}"); done
        hyperfine -N -i --warmup 3 --runs "$runs" --prepare "sleep 0.02" --style basic \
            --export-json "$raw/start-paced.json" "${named[@]}" >>"$log" 2>&1 \
            || fail start all "hyperfine paced round failed: $(tail -2 "$log")"
    fi
    if ok_peer vm; then
        for cfg in microvm q35; do
            say "start latency: $(vm_label "$cfg") ($vm_accel) boot to init and power off, $vm_runs runs"
            vm_argv "$cfg" "$vm_accel" true 128 "$vm_base" stdio
            for ((i = 0; i < vm_runs; i++)); do
                r=$($py "$here/probe.py" boot --timeout "$vm_limit" --marker BENCH-INIT -- "${qemu_argv[@]}")
                echo "$r" >>"$raw/vmboot-$cfg.jsonl"
                if [[ $(jq -r '.init_ms == null or .exit_ms == null' <<<"$r") == true ]]; then
                    fail start "$(vm_label "$cfg")" "$vm_accel boot $((i + 1)): $(jq -r '"rc \(.rc), timed out: \(.timed_out); \(.tail)"' <<<"$r")"
                    break
                fi
            done
            # QEMU alone, whatever the guest: spawn → QMP greeting (paused before the first guest
            # instruction), under KVM when KVM can create a VM at all.
            vm_argv "$cfg" "$vm_vmm_accel" true 128 "$vm_base" none
            for ((i = 0; i < runs; i++)); do
                $py "$here/probe.py" qmp --timeout 30 -- "${qemu_argv[@]}" -S -qmp stdio \
                    | jq -c --arg a "$vm_vmm_accel" '. + {accel: $a}' >>"$raw/qmp-$cfg.jsonl"
            done
        done
    fi
fi

# --- 1b. time to the first HTTP reply of a fresh busybox httpd ------------------------------------
# below the ephemeral range (32768-60999 here): no client connection of this run takes them
hport=$((20000 + RANDOM % 12000))
if ! skipped http; then
    say "first HTTP reply, $http_runs runs each"
    for p in berth docker podman; do
        ok_peer "$p" || continue
        for ((i = 0; i < http_runs; i++)); do
            port=$((hport + i))
            r=$($py "$here/probe.py" http --port "$port" --timeout 30 -- ${cli[$p]} run -d --name "cmp-http-$i" \
                -p "127.0.0.1:$port:80" "${img[$p]}" httpd -f -p 80 -h /)
            echo "$r" >>"$raw/http-$p.jsonl"
            ${cli[$p]} rm -f "cmp-http-$i" >/dev/null 2>&1 || true
            if [[ $(jq -r '.ms == null' <<<"$r") == true ]]; then
                fail http "$p" "no HTTP reply within 30 s: $(jq -r '"rc \(.rc): \(.err)"' <<<"$r")"
                break
            fi
        done
    done
    if ok_peer crun; then
        # no network of its own: the bundle shares the host's, httpd listens on 127.0.0.1:PORT
        for ((i = 0; i < http_runs; i++)); do
            port=$((hport + i))
            bash "$repo/scripts/mkbundle.sh" --host-net "$work/b-http" httpd -f -p "127.0.0.1:$port" -h / >>"$log" 2>&1
            r=$($py "$here/probe.py" http --port "$port" --timeout 30 -- $crun_run -d --bundle "$work/b-http" "cmp-http-$i")
            echo "$r" >>"$raw/http-crun.jsonl"
            crun --root "$work/crun-root" delete --force "cmp-http-$i" >/dev/null 2>&1 || true
            if [[ $(jq -r '.ms == null' <<<"$r") == true ]]; then
                fail http crun "no HTTP reply within 30 s: $(jq -r '"rc \(.rc): \(.err)"' <<<"$r")"
                break
            fi
        done
    fi
    if ok_peer vm; then
        for cfg in microvm q35; do
            for ((i = 0; i < http_runs; i++)); do
                port=$((hport + 100 + i))
                vm_argv "$cfg" "$vm_accel" httpd 128 "$vm_base" "$work/vm/http.log" "$port:80"
                r=$($py "$here/probe.py" http --kill --port "$port" --timeout "$vm_limit" -- "${qemu_argv[@]}")
                echo "$r" >>"$raw/http-vm-$cfg.jsonl"
                if [[ $(jq -r '.ms == null' <<<"$r") == true ]]; then
                    fail http "$(vm_label "$cfg")" "no HTTP reply within $vm_limit s ($vm_accel): $(grep -a BENCH- "$work/vm/http.log" | tail -2 | tr '\n' ' ')$(jq -r '.err' <<<"$r")"
                    break
                fi
            done
        done
    fi
fi

# --- 2. density -----------------------------------------------------------------------------------
# density PEER COUNT PATTERN START... — COUNT instances started one after another with START (the
# loop index is appended to a --name/id in START via {i}); then memory, helper PSS, disk, and the
# CPU of every process whose command line matches PATTERN (daemons, helpers, VMs) plus the idle
# processes, over IDLE_SECS; then the instances are removed (REMOVE_CMD, untimed for the table).
density() {
    local p=$1 count=$2 pattern=$3 helper=$4 disk=$5
    shift 5
    local mem0 mem1 disk0 disk1 t0 t1 s e i started=0 cpu0 cpu1 hp=() idle=() all=() dm=() dpss0 dpss1
    local cg ch0=null ch1=null chx=null d
    cg=$(cg_of "$p")
    declare -A cg_before=() # the memory cgroups that exist now, outside the peer's: what they held
    sync
    echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
    sleep 1
    cpu0=$($py "$here/probe.py" cpu --secs "$idle_secs")
    mapfile -t dm < <(pids_matching "$pattern")
    dpss0=$(pss_kb "${dm[@]}" | jq -s add)
    mem0=$(mem_avail_median_kb)
    if [[ -n $cg ]]; then
        mkdir -p "$cg"
        ch0=$(memcg_charged_kb "$cg")
        # a helper may go to a cgroup shared by all (podman's conmon): its growth, not its total
        while read -r d; do cg_before[$d]=$(memcg_charged_kb "$d"); done \
            < <(find "$(memcg_root)" -mindepth 1 -maxdepth 2 -type d 2>/dev/null)
    fi
    # shellcheck disable=SC2086
    disk0=$(du_kb $disk)
    : >"$raw/density-$p-starts.txt"
    t0=$(date +%s%N)
    # the starts in a subshell that joined the peer's memory cgroup (CLI calls, crun, qemu and
    # whatever they leave running are charged there)
    (
        memcg_join "$cg" || say "$p: cannot join the memory cgroup $cg: nothing charged is measured"
        for ((i = 0; i < count; i++)); do
            s=$(date +%s%N)
            if ! "${@//\{i\}/$i}" </dev/null >/dev/null 2>"$work/err"; then
                fail density "$p" "start $((i + 1)) of $count failed: $(tail -c 300 "$work/err")"
                break
            fi
            e=$(date +%s%N)
            echo $(((e - s) / 1000)) >>"$raw/density-$p-starts.txt"
        done
    )
    t1=$(date +%s%N)
    started=$(wc -l <"$raw/density-$p-starts.txt")
    sleep 2
    mem1=$(mem_avail_median_kb)
    # shellcheck disable=SC2086
    disk1=$(du_kb $disk)
    mapfile -t hp < <(if [[ -n $helper ]]; then pids_matching "$helper"; fi)
    mapfile -t idle < <(pids_matching "^$idle_cmd\$")
    mapfile -t all < <({ pids_matching "$pattern"; printf '%s\n' "${idle[@]}"; } | awk NF | sort -u)
    if [[ -n $cg ]]; then
        ch1=$(memcg_charged_kb "$cg")
        # plus the containers' own memory cgroups (and a helper's outside the peer's), less what
        # the ones that existed before held then
        chx=$(memcgs_charged_kb "$cg" "${idle[@]}" "${hp[@]}")
        for d in $(for i in "${idle[@]}" "${hp[@]}"; do pid_memcg "$i"; done | sort -u); do
            [[ $d == "$cg" || $d == "$cg"/* ]] && continue
            chx=$((chx - ${cg_before[$d]:-0}))
        done
    fi
    cpu1=$($py "$here/probe.py" cpu --secs "$idle_secs" "${all[@]}")
    dpss1=$(pss_kb "${dm[@]}" | jq -s add) # the daemons that ran before: their growth
    jq -n --arg peer "$p" --argjson target "$count" --argjson started "$started" \
        --argjson ns "$((t1 - t0))" --argjson mem0 "$mem0" --argjson mem1 "$mem1" \
        --argjson disk0 "$disk0" --argjson disk1 "$disk1" --arg helper "${helper%% *}" \
        --argjson pss "$(pss_kb "${hp[@]}" | jq -s .)" --argjson rss "$(rss_kb "${hp[@]}" | jq -s .)" \
        --argjson inst_pss "$(pss_kb "${hp[@]}" "${idle[@]}" | jq -s add)" \
        --argjson dpss0 "${dpss0:-null}" --argjson dpss1 "${dpss1:-null}" \
        --argjson cpu_before "$cpu0" --argjson cpu "$cpu1" --argjson nprocs "${#all[@]}" \
        --argjson ch0 "$ch0" --argjson ch1 "$ch1" --argjson chx "$chx" --arg memcg "$memcg_kind" \
        '{peer: $peer, target: $target, started: $started, total_s: ($ns / 1e9),
          mem_avail_drop_kb: ($mem0 - $mem1), disk_kb: ($disk1 - $disk0), helper: $helper,
          helper_pss_kb: $pss, helper_rss_kb: $rss, instance_pss_kb: $inst_pss,
          daemon_pss_kb_before: $dpss0, daemon_pss_kb_after: $dpss1, cpu_before: $cpu_before, cpu_idle: $cpu, procs: $nprocs,
          memcg: $memcg, charged_kb_before: $ch0, charged_kb_after: $ch1, charged_kb_elsewhere: $chx,
          charged_kb: (if $ch0 == null then null else $ch1 - $ch0 + $chx end)}' \
        >"$raw/density-$p.json"
    say "$p: $started of $count idle instances in $(((t1 - t0) / 1000000)) ms; MemAvailable drop $(((mem0 - mem1) / 1024)) MB$(
        [[ $ch0 != null ]] && echo "; charged $(((ch1 - ch0 + chx) / 1024)) MB")"
}
# dockerd 20.10 here has twice stopped answering in the middle of `rm -f` of its 1000 idle
# containers (no progress for many minutes, all its threads idle). Removal is watched: with no
# container gone for DOCKER_STALL_S seconds, dockerd, its containerd, shims and containers are
# killed, and a fresh dockerd (new data root) takes over for the later steps; reported as a failure.
remove_docker_watched() {
    local left last_left=-1 still=0 xp
    ${cli[docker]} ps -aq | xargs -r -n 100 ${cli[docker]} rm -f >/dev/null 2>>"$log" &
    xp=$!
    while kill -0 "$xp" 2>/dev/null; do
        sleep 5
        left=$(timeout 20 ${cli[docker]} ps -aq 2>/dev/null | wc -l) || left=$last_left
        if [[ $left == "$last_left" ]]; then still=$((still + 5)); else still=0 last_left=$left; fi
        if ((still >= ${DOCKER_STALL_S:-120})); then
            fail density docker "dockerd stopped answering rm -f with $left of ${n_idle[docker]} idle containers left (nothing removed for $still s): killed it with its containerd, shims and containers; a fresh dockerd took over"
            kill "$xp" 2>/dev/null || true
            docker_replace
            break
        fi
    done
    wait "$xp" 2>/dev/null || true
}
docker_replace() { # kills this run's dockerd and everything it started; starts a fresh one
    local pid c
    pid=$(cat "$work/docker.pid" 2>/dev/null) && { kill -9 "$pid" 2>/dev/null || true; }
    pkill -9 -f "containerd --config $work/docker-exec/" 2>/dev/null || true
    pkill -9 -f "containerd-shim-runc-v2 .*$work/" 2>/dev/null || true
    # Its containers' processes, by their cgroup (dockerd's cgroupfs driver: /docker/<id>).
    for c in /sys/fs/cgroup/pids/docker/*/cgroup.procs /sys/fs/cgroup/unified/docker/*/cgroup.procs \
        /sys/fs/cgroup/docker/*/cgroup.procs; do
        if [[ -f $c ]]; then xargs -r kill -9 <"$c" 2>/dev/null || true; fi
    done
    sleep 1
    for c in /sys/fs/cgroup/*/docker/*/ /sys/fs/cgroup/docker/*/; do
        if [[ -d $c ]]; then rmdir "$c" 2>/dev/null || true; fi
    done
    grep -o " $work/docker[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$work/docker" "$work/docker-exec"
    if ! { start_docker >>"$log" 2>&1 && import_images docker >>"$log" 2>&1; }; then
        up[docker]=""
        fail density docker "the fresh dockerd did not start: $(tail -2 "$log")"
    fi
}
remove_all() { # PEER — removes its idle instances, times it (reported as a side note)
    local p=$1 t0 t1
    t0=$(date +%s%N)
    case $p in
        berth | docker | podman)
            # podman's rm -f stops with a 10 s grace period unless told otherwise (-t 0)
            local t=()
            [[ $p == podman ]] && t=(-t 0)
            if [[ $p == docker ]]; then
                remove_docker_watched
            else
                ${cli[$p]} ps -aq | xargs -r -n 100 ${cli[$p]} rm -f "${t[@]}" >/dev/null 2>>"$log" || true
            fi ;;
        crun)
            crun --root "$work/crun-root" list -q 2>/dev/null | while read -r c; do
                crun --root "$work/crun-root" delete --force "$c" >/dev/null 2>&1
            done ;;
        vm-*)
            for f in "$work"/vm/idle-*.pid; do [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null; done
            sleep 1
            for f in "$work"/vm/idle-*.pid; do [[ -f $f ]] && kill -9 "$(cat "$f")" 2>/dev/null; rm -f "$f"; done ;;
    esac
    t1=$(date +%s%N)
    jq --argjson s "$(((t1 - t0) / 1000000))" '. + {remove_s: ($s / 1000)}' "$raw/density-$p.json" >"$work/d.json" \
        && mv "$work/d.json" "$raw/density-$p.json"
}
# vm_start_idle I CONFIG ACCEL PAUSED — one VM in the background; returns when its guest printed
# BENCH-READY (or, paused, when QEMU daemonized).
vm_start_idle() {
    local i=$1 cfg=$2 accel=$3 paused=$4
    vm_argv "$cfg" "$accel" idle 128 "$vm_base" "$work/vm/idle-$i.log"
    if [[ $paused == 1 ]]; then
        "${qemu_argv[@]}" -S -daemonize -pidfile "$work/vm/idle-$i.pid"
    else
        "${qemu_argv[@]}" -daemonize -pidfile "$work/vm/idle-$i.pid" || return 1
        if ! wait_file_grep "$work/vm/idle-$i.log" BENCH-READY "$vm_limit"; then
            echo "no BENCH-READY within $vm_limit s: $(tail -c 200 "$work/vm/idle-$i.log")" >&2
            return 1
        fi
    fi
}
if ! skipped density; then
    netflag=()
    [[ $density_net == none ]] && netflag=(--network none)
    for p in berth docker podman; do
        ok_peer "$p" || continue
        say "density: ${n_idle[$p]} idle $p containers"
        case $p in
            berth) helper="berth-shim .*--state-root $work/" ;;
            docker) helper="containerd-shim-runc-v2 .*$work/" ;;
            podman) helper="conmon .*$work/" ;;
        esac
        # shellcheck disable=SC2086
        density "$p" "${n_idle[$p]}" "$work/$p" "$helper" "${data[$p]}" \
            ${cli[$p]} run -d "${netflag[@]}" --name "cmp-idle-{i}" "${img[$p]}" $idle_cmd
        remove_all "$p"
    done
    if ok_peer crun; then
        say "density: ${n_idle[crun]} idle crun containers"
        bash "$repo/scripts/mkbundle.sh" "$work/b-idle" $idle_cmd >>"$log" 2>&1
        density crun "${n_idle[crun]}" "$work/crun-root" "" "$work/crun-root" $crun_run -d --bundle "$work/b-idle" "cmp-idle-{i}"
        remove_all crun
    fi
    if ok_peer vm; then
        say "density: $vm_n idle VMs (microvm, $vm_accel, 128 MB)"
        density "vm-microvm" "$vm_n" "$work/vm/" "qemu-system-x86_64 .*$work/vm/" "$work/vm" vm_start_idle "{i}" microvm "$vm_accel" 0
        remove_all vm-microvm
        say "density: $vm_n paused QEMUs (microvm, $vm_vmm_accel, 128 MB, no guest code run)"
        density "vm-paused" "$vm_n" "$work/vm/" "qemu-system-x86_64 .*$work/vm/" "$work/vm" vm_start_idle "{i}" microvm "$vm_vmm_accel" 1
        jq --arg a "$vm_vmm_accel" '. + {accel: $a}' "$raw/density-vm-paused.json" >"$work/d.json" && mv "$work/d.json" "$raw/density-vm-paused.json"
        remove_all vm-paused
    fi
fi

# --- 4. work inside: the same static binary everywhere --------------------------------------------
if ! skipped work; then
    say "work inside: $work_rounds rounds (cpu loop $cpu_iter x $cpu_reps, memory copy $mem_mib MiB x $mem_reps)"
    if ok_peer crun; then
        for k in cpu mem; do
            if [[ $k == cpu ]]; then a=("$cpu_iter" "$cpu_reps"); else a=("$mem_mib" "$mem_reps"); fi
            bash "$repo/scripts/mkbundle.sh" "$work/b-$k" /work "$k" "${a[@]}" >>"$log" 2>&1
            cp "$work/work" "$work/b-$k/rootfs/work"
        done
    fi
    work_in() { # PEER KIND — one run; prints the result lines
        local p=$1 k=$2 a
        if [[ $k == cpu ]]; then a=("$cpu_iter" "$cpu_reps"); else a=("$mem_mib" "$mem_reps"); fi
        case $p in
            host) "$work/work" "$k" "${a[@]}" ;;
            crun) $crun_run --bundle "$work/b-$k" "cmp-work" ;;
            vm)
                vm_extra_append="bench_cpu=$cpu_iter,$cpu_reps bench_mem=$mem_mib,$mem_reps"
                vm_argv microvm "$vm_accel" work 512 "$vm_tools" "$work/vm/work.log"
                vm_extra_append=""
                : >"$work/vm/work.log"
                timeout $((vm_limit * 20)) "${qemu_argv[@]}" >/dev/null 2>>"$log"
                grep -a "^BENCH-$k" "$work/vm/work.log" | sed 's/^BENCH-//' | tr -d '\r' ;;
            # berth's under a cgroup parent of their own: in /berth (the default, as Docker's
            # /docker) they would share one CPU weight with the containers of every other berthd
            # on the machine (test suites), while the host's runs compete as single tasks.
            berth) ${cli[$p]} run --rm --network none --cgroup-parent "$work_cg" "${tools_img[$p]}" /work "$k" "${a[@]}" ;;
            *) ${cli[$p]} run --rm --network none "${tools_img[$p]}" /work "$k" "${a[@]}" ;;
        esac
    }
    # Interleaved, so that the host's figure is taken next to the containers' and not minutes
    # apart on a shared machine: every round is host, then each peer (their order rotated per
    # round), and one closing host run; report.py compares each peer's run with the host runs
    # that bracket it (ratio per round, then the median and spread over rounds).
    # Containers only: the VM runs last in each round, then a pause before the next round's host
    # run. In the rotation it always came right before one peer (berth), whose copy then ran while
    # the host settled after QEMU freed its guest's memory (-8 % in one run, that peer alone).
    peers_w=()
    for p in berth docker podman crun; do ok_peer "$p" && peers_w+=("$p"); done
    : >"$raw/work.tsv"
    seq_=0
    work_one() { # PEER ROUND — both kinds, one line per rep: peer kind value round seq
        local p=$1 r=$2 kind lines
        for kind in cpu mem; do
            seq_=$((seq_ + 1))
            lines=$(work_in "$p" "$kind" 2>>"$log") || true
            if ! grep -q "^${kind}_" <<<"$lines"; then
                fail work "$p" "$kind, round $((r + 1)): no result (see $log)"
                continue
            fi
            awk -v p="$p" -v r="$r" -v s="$seq_" '/_/ {print p "\t" $1 "\t" $2 "\t" r "\t" s}' <<<"$lines" >>"$raw/work.tsv"
        done
    }
    for ((round = 0; round < work_rounds; round++)); do
        work_one host "$round"
        for ((k = 0; k < ${#peers_w[@]}; k++)); do
            work_one "${peers_w[$(((k + round) % ${#peers_w[@]}))]}" "$round"
        done
        if ok_peer vm; then
            work_one vm "$round"
            sleep 3
        fi
    done
    work_one host "$work_rounds"
fi

# --- 4b. TCP throughput: each default network and published port vs host loopback ------------------
if ! skipped net; then
    say "TCP throughput: iperf3 -t $secs, $tput_rounds rounds"
    iport=$(free_port $((hport + 300)))
    for ((round = 0; round < tput_rounds; round++)); do
        iperf3 -s -1 -B 127.0.0.1 -p "$iport" >>"$log" 2>&1 &
        printf '%s\tloopback\t%s\n' host "$(iperf_gbits 127.0.0.1 -p "$iport")" >>"$raw/net.tsv"
        wait $! 2>/dev/null || true
        k=0
        for p in berth docker podman; do
            ok_peer "$p" || continue
            # a port of its own per engine and round: a port just released by one engine is not
            # the next one's problem
            # the next free one: the machine is shared
            k=$((k + 1)) pport=$(free_port $((iport + 10 + 10 * round + k)))
            # its own error output, whole, as the reason (the CLI's last line is only a hint)
            if ! ${cli[$p]} run -d --name cmp-iperf -p "127.0.0.1:$pport:5201" "${tools_img[$p]}" iperf3 -s \
                >>"$log" 2>"$work/err"; then
                cat "$work/err" >>"$log"
                fail net "$p" "iperf3 server did not start (round $((round + 1)), port $pport): $(grep -v '^$' "$work/err")"
                ${cli[$p]} rm -f cmp-iperf >/dev/null 2>&1 || true # created but not started: not the next round's problem
                continue
            fi
            ip=$(${cli[$p]} inspect -f '{{.NetworkSettings.IPAddress}}' cmp-iperf 2>>"$log") || ip=""
            [[ -n $ip ]] && printf '%s\tbridge\t%s\n' "$p" "$(iperf_gbits "$ip")" >>"$raw/net.tsv"
            printf '%s\tpublished\t%s\n' "$p" "$(iperf_gbits 127.0.0.1 -p "$pport")" >>"$raw/net.tsv"
            ${cli[$p]} rm -f cmp-iperf >/dev/null 2>&1 || true
        done
        if ok_peer vm; then
            vm_argv microvm "$vm_accel" iperf 256 "$vm_tools" "$work/vm/iperf.log" "$((iport + 2)):5201"
            : >"$work/vm/iperf.log"
            "${qemu_argv[@]}" -daemonize -pidfile "$work/vm/iperf.pid" 2>>"$log"
            if wait_file_grep "$work/vm/iperf.log" BENCH-READY "$vm_limit"; then
                printf '%s\tuser-net\t%s\n' vm "$(iperf_gbits 127.0.0.1 -p "$((iport + 2))")" >>"$raw/net.tsv"
            else
                fail net vm "guest iperf3 not ready within $vm_limit s"
            fi
            kill "$(cat "$work/vm/iperf.pid")" 2>/dev/null || true
            rm -f "$work/vm/iperf.pid"
        fi
    done
fi

# --- 5. report ---------------------------------------------------------------------------------
$py "$here/report.py" "$out" || die "report.py failed"
cat "$out/table.md"
if [[ ${PUBLISH:-0} == 1 ]]; then
    mkdir -p "$here/latest"
    cp "$out/table.md" "$out/results.json" "$out"/*.svg "$here/latest/"
    say "copied to ${here#"$repo"/}/latest/"
fi
