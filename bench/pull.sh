#!/usr/bin/env bash
# bench/pull.sh — pull of a locally made ~100 MB, 5-layer image from a local
# docker-registry on 127.0.0.1: berth (crates/berth-image/examples/pull.rs, the
# library the CLI will drive) vs `skopeo copy` to an OCI directory and, when it
# works here, `podman pull` (issue 3, point 7). One hyperfine run, every store
# removed before each run (--prepare), so every run downloads everything.
#
# What each does, to read the numbers right: berth downloads every blob once,
# verifies it into its blob store and unpacks each layer into its layer store
# while it streams (made durable by one syncfs of the data root's filesystem at
# the end of the pull, then renamed in). skopeo only stores the compressed blobs
# (no unpack). podman stores and unpacks into containers/storage.
# "skopeo+umoci" adds `umoci raw unpack` of the same image, the full job done
# by the peer tools in sequence.
#
# Usage: bash bench/pull.sh   (as root; RUNS=10 LAYERS=5 LAYER_MB=20)
# Output: the hyperfine table, then medians and ratios to berth; JSON and the
# table are kept in bench/results/pull-<time>/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
runs=${RUNS:-10}
layers=${LAYERS:-5}
layer_mb=${LAYER_MB:-20}
stamp=$(date +%Y%m%d-%H%M%S)
out=$here/results/pull-$stamp
die() { echo "pull: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root"
for t in docker-registry skopeo umoci hyperfine jq; do
    command -v "$t" >/dev/null || die "$t is missing: run scripts/setup.sh"
done

work=$(mktemp -d /tmp/berth-pull-bench.XXXXXX)
reg_pid=
cleanup() {
    if [[ -n $reg_pid ]]; then
        kill "$reg_pid" 2>/dev/null || true
        wait "$reg_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$out"

# --- the berth side -------------------------------------------------------------
(cd "$repo" && cargo build --quiet --release -p berth-image --example pull)
berth_pull=$repo/target/release/examples/pull

# --- the image: LAYERS layers of LAYER_MB each, half random, half base64 text ---
oci=$work/oci
umoci init --layout "$oci"
umoci new --image "$oci:bench"
for i in $(seq 1 "$layers"); do
    bundle=$work/bundle
    rm -rf "$bundle"
    umoci unpack --rootless --image "$oci:bench" "$bundle" >/dev/null
    d=$bundle/rootfs/data/layer$i
    mkdir -p "$d"
    half=$((layer_mb / 2))
    for f in $(seq 1 4); do
        head -c $((half * 1024 * 1024 / 4)) /dev/urandom >"$d/random$f.bin"
    done
    head -c $((half * 1024 * 1024 * 3 / 4)) /dev/urandom | base64 >"$d/text.txt"
    umoci repack --image "$oci:bench" "$bundle" >/dev/null
done
umoci config --image "$oci:bench" --os linux --architecture amd64 --config.cmd /bin/sh
rm -rf "$work/bundle"
size=$(du -sm "$oci/blobs" | cut -f1)

# --- a registry on a free port, seeded by skopeo ---------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null || die "docker-registry did not start: $(cat "$work/registry.log")"
ref=127.0.0.1:$port/bench:1
skopeo copy --quiet --dest-tls-verify=false "oci:$oci:bench" "docker://$ref"
echo "image: $ref, $layers layers, ${size} MB compressed (blobs incl. config and manifest)"

# --- the commands ------------------------------------------------------------------
names=(berth skopeo skopeo+umoci)
cmds=(
    "$berth_pull --quiet $work/berth $ref"
    "skopeo copy --quiet --src-tls-verify=false docker://$ref oci:$work/skopeo:b"
    "skopeo copy --quiet --src-tls-verify=false docker://$ref oci:$work/skopeo:b && umoci raw unpack --image $work/skopeo:b $work/unpacked"
)
prepare="rm -rf $work/berth $work/skopeo $work/unpacked"
if command -v podman >/dev/null; then
    cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
EOF
    pod="env CONTAINERS_CONF=$work/containers.conf podman --root $work/podman --runroot $work/podman-run --storage-driver overlay"
    if $pod pull -q --tls-verify=false "$ref" >/dev/null 2>"$work/podman.err"; then
        names+=(podman)
        cmds+=("$pod pull -q --tls-verify=false $ref")
        prepare="$prepare; $pod rmi -af >/dev/null 2>&1 || true; rm -rf $work/podman $work/podman-run"
    else
        echo "podman pull does not work here, left out: $(tail -1 "$work/podman.err")"
    fi
fi
prepare="$prepare; sync"

args=()
for i in "${!cmds[@]}"; do
    args+=(--command-name "${names[$i]}" "${cmds[$i]}")
done
hyperfine --style basic --runs "$runs" --warmup 1 --prepare "$prepare" \
    --export-json "$out/pull.json" "${args[@]}" | tee "$out/pull.txt"

# --- medians and ratios -----------------------------------------------------------------
echo
echo "median ms (ratio to berth; < 1 is faster than berth):"
berth_ms=$(jq -r '.results[] | select(.command=="berth") | .median * 1000' "$out/pull.json")
jq -r --argjson b "$berth_ms" '.results[] |
    "\(.command)\t\(.median * 1000 | floor)\t\(.median * 1000 / $b * 100 | floor / 100)"' \
    "$out/pull.json" | column -t -s $'\t' | tee -a "$out/pull.txt"
fastest_peer=$(jq -r '[.results[] | select(.command!="berth" and .command!="skopeo+umoci") | .median] | min * 1000' "$out/pull.json")
echo "berth / fastest peer (store-only peers included): $(echo "$berth_ms $fastest_peer" | awk '{printf "%.2f", $1/$2}')" | tee -a "$out/pull.txt"
