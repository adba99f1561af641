#!/usr/bin/env bash
# demo.sh — run a container from a locally made busybox image (no registry), the way a user
# does: `berth run --rm busybox ...` through berthd (started in the background by the CLI if no
# daemon answers; data root /var/lib/berth, socket /run/berth/berth.sock). The image is made by
# importing the busybox root filesystem that scripts/setup.sh built (`berth import`).
#
# RUNTIME=berth-runc|crun|runc runs the same command as an OCI bundle with that runtime instead
# (no daemon): scripts/mkbundle.sh + `RUNTIME run --bundle B ID`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
rootfs=${BERTH_TEST_ROOTFS:-/var/cache/berth/rootfs}
[[ $(id -u) -eq 0 ]] || { echo "demo: must run as root" >&2; exit 1; }
cmd=(sh -c 'echo hello from berth; id; hostname')

if [[ -n ${RUNTIME:-} ]]; then
    runtime=$RUNTIME
    [[ $runtime == berth-runc ]] && runtime=$repo/target/release/berth-runc
    command -v "$runtime" >/dev/null || { echo "demo: $runtime not found: run bash scripts/setup.sh" >&2; exit 1; }
    bundle=$(mktemp -d /tmp/berth-demo.XXXXXX)
    trap 'rm -rf --one-file-system "$bundle"' EXIT
    bash "$here/mkbundle.sh" "$bundle" "${cmd[@]}"
    out=$("$runtime" run --bundle "$bundle" "demo-$$" </dev/null)
    [[ -n $out ]] || { echo "demo: $runtime run exited 0 but the container printed nothing" >&2; exit 1; }
    printf '%s\n' "$out"
    exit 0
fi

berth=$repo/target/release/berth
[[ -x $berth ]] || { echo "demo: $berth not found: run bash scripts/setup.sh" >&2; exit 1; }
[[ -d $rootfs/bin ]] || { echo "demo: no busybox rootfs at $rootfs: run bash scripts/setup.sh" >&2; exit 1; }
if ! "$berth" image inspect busybox:latest >/dev/null 2>&1; then
    tar -C "$rootfs" -c . | "$berth" import - busybox:latest >/dev/null
fi
"$berth" run --rm busybox "${cmd[@]}"
