#!/usr/bin/env bash
# Installs what `cargo build -p mcstore-bench --features peers` needs on Debian 12:
# libclang for rocksdb's bindgen, a C++ compiler for RocksDB's sources, and libpmemobj for the
# PMDK peer (bench/pmdk/pmemobj_kv.c). The default build of the bench needs none of this.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
    clang libclang-dev g++ make pkg-config libpmemobj-dev
