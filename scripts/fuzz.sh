#!/usr/bin/env bash
# Build and run every fuzz target of fuzz/ for a bounded time, and print how many inputs each ran.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default 30 s per target, every target
#
# cargo fuzz needs nightly rustc flags (-Zsanitizer, sancov passes). Without a nightly
# toolchain, RUSTC_BOOTSTRAP=1 lets the stable compiler accept them; that is what this script
# does (set FUZZ_TOOLCHAIN=nightly to use a nightly instead). cargo-fuzz itself is installed
# once, pinned, into ${SOURCEBUILD_CACHE}/cargo-fuzz-VERSION with `cargo install --root`.
# Corpora and crash artifacts stay in fuzz/corpus and fuzz/artifacts (git-ignored); the build
# goes to ${SOURCEBUILD_CACHE}/fuzz-target (FUZZ_TARGET_DIR overrides it).
# Exit status: non-zero when a target found a crash (its artifact path is printed).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}
cargo_fuzz_version=0.13.1
seconds=${1:-30}
shift || true
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2; }

root=$cache/cargo-fuzz-$cargo_fuzz_version
if [[ ! -x $root/bin/cargo-fuzz ]]; then
  echo "fuzz.sh: installing cargo-fuzz $cargo_fuzz_version into $root" >&2
  CARGO_TARGET_DIR=$cache/cargo-fuzz-build cargo install --locked --quiet \
    cargo-fuzz --version "$cargo_fuzz_version" --root "$root"
  rm -rf "$cache/cargo-fuzz-build"
fi
export PATH=$root/bin:$PATH
if [[ -n ${FUZZ_TOOLCHAIN:-} ]]; then
  fuzz=(cargo "+$FUZZ_TOOLCHAIN" fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
target_dir=${FUZZ_TARGET_DIR:-$cache/fuzz-target}
unset CARGO_TARGET_DIR

cd "$repo"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <("${fuzz[@]}" list)
fi
echo "fuzz.sh: building ${targets[*]}" >&2
"${fuzz[@]}" build --target-dir "$target_dir" >&2

status=0
summary=()
for target in "${targets[@]}"; do
  log=$(mktemp)
  artifacts=fuzz/artifacts/$target
  mkdir -p "$artifacts" "fuzz/corpus/$target"
  before=$(find "$artifacts" -type f | wc -l)
  echo "fuzz.sh: running $target for ${seconds}s" >&2
  set +e
  # cargo fuzz passes -artifact_prefix=fuzz/artifacts/<target>/ and the corpus fuzz/corpus/<target>.
  "${fuzz[@]}" run --target-dir "$target_dir" "$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [[ -z $runs ]]; then
    runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  fi
  corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
  crashes=$(($(find "$artifacts" -type f | wc -l) - before))
  if [[ $rc -ne 0 ]]; then
    status=1
    # A failure without an artifact (the build, a sanitizer abort before the input was saved)
    # still counts as one.
    [[ $crashes -gt 0 ]] || crashes=1
    tail -40 "$log" >&2
    grep -oE 'fuzz/artifacts/[^ ]+' "$log" | sort -u | sed 's/^/fuzz.sh: crash input kept in /' >&2 || true
  fi
  summary+=("fuzz $target: ${runs:-?} executions, $corpus corpus entries, $crashes crashes")
  rm -f "$log"
done
printf '%s\n' "${summary[@]}"
exit $status
