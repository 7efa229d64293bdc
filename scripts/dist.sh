#!/usr/bin/env bash
# Builds the release binary for shipping: target/dist/sluice holds code and symbols (a panic's
# backtrace names its functions) and no debug info; the debug info goes beside it, for gdb,
# perf and addr2line, which find both files by themselves:
#   target/dist/sluice.debug  the line tables (linked from the binary by .gnu_debuglink)
#   target/dist/sluice.dwp    the rest (split DWARF, `split-debuginfo = "packed"` in Cargo.toml)
# Ship target/dist/sluice alone; keep the other two to debug a crash of that very build.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in objcopy; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed (Debian: binutils)" >&2; exit 1; }
done
cargo build --release -p sluice --locked
mkdir -p target/dist
cp target/release/sluice target/release/sluice.dwp target/dist/
objcopy --only-keep-debug target/dist/sluice target/dist/sluice.debug
objcopy --strip-debug --add-gnu-debuglink=target/dist/sluice.debug target/dist/sluice
ls -l target/dist/
