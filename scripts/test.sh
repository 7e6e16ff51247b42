#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property tests and the root integration
# tests (each builds its own namespaces; nothing touches this machine's network).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the integration tests create network namespaces" >&2; exit 1; }
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
