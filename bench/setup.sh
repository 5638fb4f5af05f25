#!/usr/bin/env bash
# Installs what `mcstore-bench --features peers` needs on Debian 12: libclang (bindgen for the
# RocksDB and LMDB bindings), Debian's RocksDB (linked instead of compiling RocksDB's C++ sources,
# which takes hours on a busy 2-core machine: see bench/peers.sh for the environment it needs),
# and libpmemobj for the PMDK peer (bench/pmdk/pmemobj_kv.c, compiled by the bench at run time).
# The default build of the bench needs none of this.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
    clang libclang-dev gcc make pkg-config libpmemobj-dev librocksdb-dev
