#!/usr/bin/env bash
# Installs the Debian package with dpkg -i and checks what it installed: the binary runs,
# validates the example configuration offline, the manual page and completions are where
# man and the shells look, the systemd unit passes systemd-analyze, the system user exists.
# Removes it again afterwards. Needs root (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(ls -t target/package/*.deb | head -1)
echo "installing $deb"
dpkg -i "$deb"
trap 'dpkg --purge roster >/dev/null || true' EXIT
/usr/bin/roster --version
/usr/bin/roster validate /usr/share/doc/roster/examples/roster.toml /usr/share/doc/roster/examples/people.yaml
test -f /usr/share/man/man1/roster.1.gz
zcat /usr/share/man/man1/roster.1.gz | grep -q '^.TH roster'
test -f /usr/share/bash-completion/completions/roster
test -f /usr/share/zsh/vendor-completions/_roster
test -f /usr/share/fish/vendor_completions.d/roster.fish
test -f /lib/systemd/system/roster.service
getent passwd roster >/dev/null
[ "$(stat -c '%U %a' /var/lib/roster)" = "roster 700" ]
if command -v systemd-analyze >/dev/null 2>&1; then
  # The unit as systemd reads it (ExecStart's binary must exist; warnings fail the check).
  systemd-analyze verify /lib/systemd/system/roster.service
fi
echo "package test: installed, ran, and removed cleanly"
