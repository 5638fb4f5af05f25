#!/usr/bin/env bash
# cargo-fuzz smoke run: every target in fuzz/Cargo.toml for SECONDS each (default 20) on nightly.
# New inputs go to a scratch directory, so the committed corpus (fuzz/corpus/TARGET, replayed on
# stable by the integration suite: tests/regression.rs) stays as it is. Installs cargo-fuzz when
# missing (`cargo install cargo-fuzz --locked`); without nightly the run is skipped (exit 0).
# A build failure or a finding fails it: the input is kept under fuzz/artifacts/TARGET/ — copy it
# into fuzz/corpus/TARGET/ (named after what it found) once fixed, so stable CI replays it.
# Appends "count<TAB>fuzz execs TARGET<TAB>N" records to $MCSTORE_FIGURES_DIR/fuzz.txt when set.
#
# SIGBUS: mapped_poison takes real SIGBUS faults (emulated poison). libFuzzer and ASan install
# their own SIGBUS handlers before mcstore's, which chains to them for faults it does not claim;
# ASAN_OPTIONS=handle_sigbus=1 keeps ASan's handler chainable (handle_sigbus=2 would make it
# exclusive and mcstore's install would fail with a typed error). All targets run under ASan.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
targets=($(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^mcstore-fuzz$'))

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz-smoke: no nightly toolchain (cargo +nightly): skipped"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: cargo-fuzz missing: cargo install cargo-fuzz --locked"
  if ! cargo install cargo-fuzz --locked; then
    echo "fuzz-smoke: cargo-fuzz could not be installed" >&2
    exit 1
  fi
fi
echo "fuzz-smoke: $(cargo +nightly --version), $(cargo +nightly fuzz --version), targets: ${targets[*]}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-handle_sigbus=1}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
# One build of every target (the runs below reuse it: same flags).
if ! cargo +nightly fuzz build >"$scratch/build.log" 2>&1; then
  tail -n 40 "$scratch/build.log"
  echo "fuzz-smoke: the fuzz targets do not build" >&2
  exit 1
fi
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "fuzz/artifacts/$target"
  log="$scratch/$target.log"
  echo "fuzz-smoke: running $target for ${seconds}s (corpus fuzz/corpus/$target)"
  cargo +nightly fuzz run "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1
  rc=$?
  # libFuzzer's status lines read "#N ... exec/s: R"; the last N is the executions so far.
  execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
  rate=$(grep -oE 'exec/s: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')
  echo "fuzz-smoke: $target exited $rc after ${execs:-0} executions (${rate:-0} exec/s)"
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz-smoke: FINDING in $target; inputs under fuzz/artifacts/$target/" >&2
    status=1
  elif [ -n "${MCSTORE_FIGURES_DIR:-}" ]; then
    mkdir -p "$MCSTORE_FIGURES_DIR"
    printf "count\tfuzz execs %s\t%s\n" "$target" "${execs:-0}" >>"$MCSTORE_FIGURES_DIR/fuzz.txt"
  fi
done
exit "$status"
