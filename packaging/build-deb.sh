#!/usr/bin/env bash
# Builds Roster's Debian package with cargo-deb: the binary, its manual page, shell
# completions, a hardened systemd unit running as the `roster` system user, and an example
# configuration. The man page and completions come from the binary itself.
#
#   packaging/build-deb.sh                 # release build, then the package
#   packaging/build-deb.sh --profile dev   # package the debug binary `cargo test` built (CI;
#                                          # cargo-deb warns that dev is meant for tests only)
#
# The package is written to target/package/.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [ "${1:-}" = "--profile" ]; then profile="$2"; fi
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
if [ "$profile" = release ]; then cargo build --release --locked --bin roster; fi
bin="target/$dir/roster"
[ -x "$bin" ] || { echo "no $bin: build it first (cargo build --profile $profile --bin roster)" >&2; exit 1; }
out=target/package
# The manual page and completions, made by the binary (packaging/out is not committed).
assets=packaging/out
rm -rf "$assets" && mkdir -p "$assets/completions" "$out"
"$bin" man > "$assets/roster.1"
gzip -9n -f "$assets/roster.1"
"$bin" completions bash > "$assets/completions/roster"
"$bin" completions zsh > "$assets/completions/_roster"
"$bin" completions fish > "$assets/completions/roster.fish"
cargo deb -p roster-cli --no-build --locked --profile "$profile" --output "$out/"
ls "$out"/*.deb
