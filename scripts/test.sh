#!/usr/bin/env bash
# test.sh — the project's test command (README, .ci/run): every test of the
# workspace in release mode, with BERTH_TEST_ROOTFS pointing at the busybox
# rootfs that scripts/setup.sh prepared (made here if missing). Tests that need
# a bundle copy that rootfs or call scripts/mkbundle.sh; they must not write
# into it. Extra arguments go to cargo nextest (or cargo test without nextest).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache_dir=${BERTH_CACHE_DIR:-/var/cache/berth}
[[ -d $HOME/.cargo/bin ]] && PATH=$HOME/.cargo/bin:$PATH

if [[ ! -f $cache_dir/rootfs.stamp ]]; then
    mkdir -p "$cache_dir"
    {
        flock 9
        bash "$here/mkrootfs.sh" "$cache_dir/rootfs"
        touch "$cache_dir/rootfs.stamp"
    } 9>"$cache_dir/rootfs.lock"
fi
export BERTH_TEST_ROOTFS=$cache_dir/rootfs
export BERTH_MKBUNDLE=$here/mkbundle.sh

cd "$repo"
# The end-to-end tests drive the release berth-runc: build it first, so that a filtered run
# (`-p berth-e2e`) never tests a stale binary.
if [[ -z ${BERTH_RUNC:-} || -z ${BERTH_SHIM:-} || -z ${BERTH_DAEMON:-} ]]; then
    cargo build --release -q -p berth-runtime -p berth-engine --bins
    export BERTH_RUNC=${BERTH_RUNC:-$repo/target/release/berth-runc}
    export BERTH_SHIM=${BERTH_SHIM:-$repo/target/release/berth-shim}
    export BERTH_DAEMON=${BERTH_DAEMON:-$repo/target/release/berthd}
fi
# berth's own CLI, for the e2e tests that drive it next to the docker CLI.
if [[ -z ${BERTH_CLI:-} ]]; then
    cargo build --release -q -p berth-cli --bins
    export BERTH_CLI=$repo/target/release/berth
fi
# The Docker SDK for Python (scripts/setup.sh puts it into a venv).
if [[ -z ${BERTH_PY:-} && -x $cache_dir/venv/bin/python ]]; then
    export BERTH_PY=$cache_dir/venv/bin/python
fi
if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --release --no-fail-fast --no-tests=warn "$@"
else
    exec cargo test --workspace --release --no-fail-fast "$@"
fi
