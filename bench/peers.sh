#!/usr/bin/env bash
# Build mcstore-bench with the peer engines and run it: `bash bench/peers.sh [bench args…]`,
# e.g. `bash bench/peers.sh --scale 0.2 --out bench-results`. Run bench/setup.sh once first.
# RocksDB comes from Debian's librocksdb-dev (7.8) through the rocksdb crate 0.19, whose
# bindings are generated from the system header, so the C++ library is linked, not compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu
export ROCKSDB_INCLUDE_DIR=/usr/include
cargo build --release -p mcstore-bench --features peers
exe="${CARGO_TARGET_DIR:-target}/release/mcstore-bench"
exec "$exe" "$@"
