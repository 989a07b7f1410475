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
# The service starts as the package's user with the unit's command line and state folder,
# on a configuration whose one instance is a closed local port (nothing leaves the machine).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cfg=$(mktemp -d)
cp /usr/share/doc/roster/examples/people.yaml "$cfg/"
cat > "$cfg/roster.toml" <<TOML
[service]
listen = "127.0.0.1:$port"
state = "/var/lib/roster"
interval = "1h"
roster_watch = "off"

[marketo.smoke]
url = "http://127.0.0.1:1"
client_id = "smoke"
client_secret_env = "ROSTER_SMOKE_SECRET"
roster = "people.yaml"
TOML
chown -R root:roster "$cfg" && chmod 750 "$cfg" && chmod 640 "$cfg"/*
runuser -u roster -- env ROSTER_SMOKE_SECRET=smoke /usr/bin/roster --config "$cfg/roster.toml" --state /var/lib/roster serve >"$cfg/serve.log" 2>&1 &
serve=$!
for _ in $(seq 300); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$serve" 2>/dev/null || { cat "$cfg/serve.log" >&2; echo "roster serve stopped" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" | grep -q ok
kill -TERM "$serve" && wait "$serve" || true
# What it wrote is the roster user's alone.
state_file=$(find /var/lib/roster -maxdepth 1 -name '*.sqlite' | head -1)
[ -n "$state_file" ] && [ "$(stat -c '%U %a' "$state_file")" = "roster 600" ] \
  || { ls -la /var/lib/roster >&2; echo "the state is not roster's own 0600 file" >&2; exit 1; }
runuser -u roster -- /usr/bin/roster --state /var/lib/roster log verify
rm -rf "$cfg"
echo "package test: installed, served as the roster user, and removed cleanly"
