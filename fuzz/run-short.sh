#!/usr/bin/env bash
# A short fuzzing run of both targets. With cargo-fuzz and a nightly
# toolchain it runs libFuzzer for SECONDS per target; without them it runs
# the same target bodies on stable over a deterministic corpus
# (tests/fuzz_smoke.rs), which the README's test command also runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-30}"
if cargo fuzz --version >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q nightly; then
    for target in stream_decode view_open text_sources; do
        cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_PER_TARGET"
    done
else
    echo "cargo-fuzz or nightly not available: running the target bodies on stable"
    cargo test --release --test fuzz_smoke
fi
