#!/usr/bin/env bash
# Usage: fuzz/run-short.sh [SECONDS] [TARGET...]
#
# A short fuzzing run: SECONDS (default 30) per TARGET (default: every
# target, `xstate-fuzz --list`). With cargo-afl installed it builds the
# AFL++ harness and runs AFL++ on each target from its committed corpus
# fuzz/corpus/TARGET, one target after the other, its work in
# fuzz/afl/out/TARGET; it fails when AFL++ saved a crash or a hang. Without
# cargo-afl it runs the stable replay of the corpus and random mutations of
# it (tests/fuzz_smoke.rs) for SECONDS per target instead.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    echo "usage: fuzz/run-short.sh [SECONDS] [TARGET...]" >&2
    exit 2
}
SECONDS_PER_TARGET="${1:-30}"
[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] && [ "$SECONDS_PER_TARGET" -gt 0 ] || usage
shift $(($# > 0 ? 1 : 0))
TARGETS=("$@")

if ! cargo afl --version >/dev/null 2>&1; then
    echo "cargo-afl not available: replaying the corpus and mutating it on stable" \
        "for ${SECONDS_PER_TARGET}s per target"
    cd ..
    XSTATE_FUZZ_SECONDS="$SECONDS_PER_TARGET" XSTATE_FUZZ_TARGETS="${TARGETS[*]}" \
        cargo test --release --test fuzz_smoke -- --nocapture
    exit
fi

cargo afl build --release
harness=target/release/xstate-fuzz
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <("$harness" --list)
fi
known=$("$harness" --list)
for target in "${TARGETS[@]}"; do
    grep -qx -- "$target" <<<"$known" || { echo "no fuzz target $target (one of: $(echo $known))" >&2; exit 2; }
done

# No system settings are changed: AFL++ is told to accept them as they are.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
found=0
for target in "${TARGETS[@]}"; do
    out="afl/out/$target"
    rm -rf "$out"
    mkdir -p afl/out
    echo "== $target: AFL++ for ${SECONDS_PER_TARGET}s, output in fuzz/$out =="
    cargo afl fuzz -V "$SECONDS_PER_TARGET" -i "corpus/$target" -o "$out" \
        "$harness" "$target" >"afl/out/$target.log" 2>&1 || {
        tail -n 20 "afl/out/$target.log" >&2
        exit 1
    }
    stats="$out/default/fuzzer_stats"
    grep -E '^(execs_done|execs_per_sec|corpus_count|bitmap_cvg|saved_crashes|saved_hangs) ' "$stats"
    crashes=$(awk '$1 == "saved_crashes" { print $3 }' "$stats")
    hangs=$(awk '$1 == "saved_hangs" { print $3 }' "$stats")
    if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
        echo "$target: $crashes crashes, $hangs hangs in fuzz/$out/default/{crashes,hangs}" >&2
        found=1
    fi
done
exit "$found"
