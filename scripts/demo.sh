#!/usr/bin/env bash
# demo.sh — run a container from a locally made busybox image (no registry):
# makes an OCI bundle with scripts/mkbundle.sh and runs it with
#   target/release/berth-runc run --bundle B ID
# RUNTIME=crun (or runc) runs the same bundle with another runtime.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
runtime=${RUNTIME:-$repo/target/release/berth-runc}
[[ $(id -u) -eq 0 ]] || { echo "demo: must run as root" >&2; exit 1; }
[[ -x $runtime ]] || command -v "$runtime" >/dev/null \
    || { echo "demo: $runtime not found: run bash scripts/setup.sh" >&2; exit 1; }

bundle=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf --one-file-system "$bundle"' EXIT
bash "$here/mkbundle.sh" "$bundle" sh -c 'echo hello from berth; id; hostname'
out=$("$runtime" run --bundle "$bundle" "demo-$$" </dev/null)
[[ -n $out ]] || { echo "demo: $runtime run exited 0 but the container printed nothing" >&2; exit 1; }
printf '%s\n' "$out"
