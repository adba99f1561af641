# bench/compare/vm.sh — the VM guest of bench/compare (sourced by run.sh; needs lib.sh, $work,
# $raw, $log, $here).
#
# The guest: Debian's kernel (/boot/vmlinuz-*-amd64 from linux-image-amd64) and a busybox
# initramfs made here: busybox-static, guest/init (modes: true, idle, httpd, iperf, work) and the
# virtio modules the network needs, loaded in modules.dep order. tools.cpio appends the same
# static /work binary the containers run, and iperf3 with its libraries.
#
# Two machine types: microvm (virtio-mmio, qboot, no PCI: QEMU's fast configuration) and q35
# (SeaBIOS, PCI, virtio-net-pci: the usual one). The accelerator is KVM when a guest reaches its
# init under it within KVM_TIMEOUT seconds (vm_probe_kvm), else TCG, and every figure says which.
# shellcheck shell=bash disable=SC2154,SC2034 # $work, $raw, $log... are set, vm_* read by run.sh

vm_build_guest() { # → sets vm_kernel, vm_base, vm_tools, vm_kver
    vm_kernel=$(printf '%s\n' /boot/vmlinuz-*-amd64 | sort -V | tail -1)
    [[ -f $vm_kernel ]] || return 1
    vm_kver=${vm_kernel#/boot/vmlinuz-}
    vm_hz=$(awk -F= '/^CONFIG_HZ=/ {print $2}' "/boot/config-$vm_kver" 2>/dev/null)
    vm_hz=${vm_hz:-250}
    vm_tsc_khz=$(awk -F': *' '/^cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
    local d=$work/vm/root moddir=/lib/modules/$vm_kver i=0 m
    rm -rf "$work/vm" && mkdir -p "$d"/{bin,lib/modules,www}
    cp /bin/busybox "$d/bin/busybox"
    cp "$here/guest/init" "$d/init"
    echo "hello from the guest" >"$d/www/index.html"
    # The modules and their dependencies, dependencies first (modules.dep lists a module's
    # dependencies so that the last one is loaded first).
    local -A seen=()
    local order=()
    add_mod() {
        local rel=$1 deps dep
        [[ -n ${seen[$rel]:-} ]] && return
        seen[$rel]=1
        deps=$(awk -v m="$rel:" '$1 == m { $1 = ""; print }' "$moddir/modules.dep")
        for dep in $(tr ' ' '\n' <<<"$deps" | tac); do add_mod "$dep"; done
        order+=("$rel")
    }
    for m in virtio_pci virtio_mmio virtio_net; do
        add_mod "$(awk -F: -v m="/$m.ko" 'index($1, m) == length($1) - length(m) + 1 {print $1}' "$moddir/modules.dep" | head -1)"
    done
    for m in "${order[@]}"; do
        [[ -f $moddir/$m ]] || continue
        i=$((i + 1))
        case $m in
            *.ko) cp "$moddir/$m" "$d/lib/modules/$(printf %02d "$i")-$(basename "$m")" ;;
            *.ko.xz) xz -dc "$moddir/$m" >"$d/lib/modules/$(printf %02d "$i")-$(basename "$m" .xz)" ;;
            *.ko.zst) zstd -qdc "$moddir/$m" >"$d/lib/modules/$(printf %02d "$i")-$(basename "$m" .zst)" ;;
        esac
    done
    (cd "$d" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$work/vm/base.cpio"
    # tools: /work and iperf3 with what ldd lists, as a second archive appended (the kernel
    # unpacks concatenated newc archives in order).
    local t=$work/vm/tools lib
    mkdir -p "$t"
    cp "$work/work" "$t/work"
    copy_into() { mkdir -p "$t$(dirname "$1")"; cp -L "$1" "$t$1"; }
    copy_into "$(command -v iperf3)"
    for lib in $(ldd "$(command -v iperf3)" | grep -o '/[^ ]*'); do copy_into "$lib"; done
    (cd "$t" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$work/vm/extra.cpio"
    cat "$work/vm/base.cpio" "$work/vm/extra.cpio" >"$work/vm/tools.cpio"
    vm_base=$work/vm/base.cpio vm_tools=$work/vm/tools.cpio
}

# vm_argv CONFIG ACCEL MODE MEM_MB INITRD SERIAL [HOSTFWD] — sets the array qemu_argv.
# CONFIG microvm|q35; ACCEL kvm|kvm-host|tcg; SERIAL stdio, none or a file path; HOSTFWD
# "HOSTPORT:GUESTPORT" adds user networking with that forward on 127.0.0.1.
vm_argv() {
    local cfg=$1 accel=$2 mode=$3 mem=$4 initrd=$5 serial=$6 fwd=${7:-}
    qemu_argv=(qemu-system-x86_64 -M "$cfg" -m "$mem" -nodefaults -no-user-config -display none -no-reboot)
    case $accel in
        kvm-host) qemu_argv+=(-accel kvm -cpu host) ;;
        kvm) qemu_argv+=(-accel kvm) ;;
        tcg) qemu_argv+=(-accel tcg) ;;
    esac
    case $serial in
        stdio | none) qemu_argv+=(-serial "$serial") ;;
        *) qemu_argv+=(-serial "file:$serial") ;;
    esac
    if [[ -n $fwd ]]; then
        qemu_argv+=(-netdev "user,id=n0,hostfwd=tcp:127.0.0.1:${fwd%%:*}-:${fwd##*:}")
        if [[ $cfg == microvm ]]; then qemu_argv+=(-device 'virtio-net-device,netdev=n0'); else qemu_argv+=(-device 'virtio-net-pci,netdev=n0'); fi
    fi
    local clock=""
    # Under TCG the guest calibrates its TSC against the PIT; when the host is loaded, microvm
    # (no HPET, no ACPI PM timer to refine it) gets it wrong and spins in delay loops for minutes.
    # Tell it the host's TSC rate (TCG's guest TSC is the host's) and skip the calibrations.
    [[ $accel == tcg ]] && clock="tsc_early_khz=$vm_tsc_khz lpj=$((vm_tsc_khz * 1000 / vm_hz))"
    qemu_argv+=(-kernel "$vm_kernel" -initrd "$initrd"
        -append "console=ttyS0 quiet panic=-1 reboot=t $clock bench=$mode ${vm_extra_append:-}")
}

# vm_probe_vmm — can QEMU create a KVM VM at all (paused, before the first guest instruction)?
# Sets vm_vmm_accel to kvm or tcg: what "QEMU alone" runs under.
vm_probe_vmm() {
    local r
    vm_vmm_accel=tcg
    [[ -r /dev/kvm ]] || return 0
    vm_argv microvm kvm true 128 "$vm_base" none
    r=$($py "$here/probe.py" qmp --timeout 30 -- "${qemu_argv[@]}" -S -qmp stdio)
    echo "$r" >>"$raw/kvm-probe.jsonl"
    [[ $(jq -r '.ready_ms != null and .rc == 0' <<<"$r") == true ]] && vm_vmm_accel=kvm
    return 0
}

# vm_probe_kvm — tries the guest under KVM for real (microvm, -cpu host and then QEMU's default
# CPU), each bounded by KVM_TIMEOUT seconds. Sets vm_accel (kvm-host, kvm or tcg) and
# vm_kvm_reason (why KVM was not used, empty when it was); writes raw/kvm-probe.json.
vm_probe_kvm() {
    local a r reasons=()
    vm_accel=tcg vm_kvm_reason=""
    if [[ ! -r /dev/kvm ]]; then
        vm_kvm_reason="/dev/kvm missing"
    else
        for a in kvm-host kvm; do
            vm_argv microvm "$a" true 128 "$vm_base" stdio
            r=$($py "$here/probe.py" boot --timeout "$kvm_timeout" --marker BENCH-INIT -- "${qemu_argv[@]}")
            echo "$r" | jq -c --arg a "$a" '. + {accel: $a}' >>"$raw/kvm-probe.jsonl"
            if [[ $(jq -r '.init_ms != null' <<<"$r") == true ]]; then
                vm_accel=$a vm_kvm_reason=""
                return 0
            fi
            reasons+=("$a: $(jq -r 'if .timed_out then "no init within '"$kvm_timeout"' s" else "qemu exited \(.rc) before init" end + (if .tail != "" then "; console/stderr: " + .tail else "; no console output" end)' <<<"$r")")
        done
        vm_kvm_reason=$(printf '%s; ' "${reasons[@]}")
    fi
    say "KVM does not boot the guest here ($vm_kvm_reason): the guest runs under TCG, labelled so"
}
