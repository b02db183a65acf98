#!/usr/bin/env bash
# Builds the Debian package, installs it with dpkg, checks its contents and the installed
# unit with `systemd-analyze verify`, runs the service test against the installed binary
# and unit (NOTIFY_SOCKET from the test, as the unit's user), then purges the package.
# Needs root and a release build (slow: not part of scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test-package: run as root (dpkg -i)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
deb=$(./scripts/package-deb.sh "$out" | tail -n 1)
echo "== package: $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg -i "$deb"
for f in /usr/bin/nextvision /lib/systemd/system/nextvision.service \
    /etc/nextvision/nextvision.toml /etc/default/nextvision \
    /usr/share/man/man1/nextvision.1.gz /usr/share/man/man1/nextvision-run.1.gz \
    /usr/share/bash-completion/completions/nextvision \
    /usr/share/zsh/vendor-completions/_nextvision \
    /usr/share/fish/vendor_completions.d/nextvision.fish; do
    dpkg -S "$f" >/dev/null || { echo "test-package: $f not in the package" >&2; exit 1; }
done
nextvision --version
nextvision validate /etc/nextvision/nextvision.toml
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/nextvision.service
    echo "== systemd-analyze verify: ok"
    systemd-analyze security --offline=yes /lib/systemd/system/nextvision.service | tail -n 1
else
    echo "== systemd-analyze not installed: unit not verified"
fi
if command -v man >/dev/null; then
    man -l /usr/share/man/man1/nextvision.1.gz | head -n 5 | cat
fi
bash -c 'source /usr/share/bash-completion/completions/nextvision && complete -p nextvision'
NV_SERVICE_UNIT=/lib/systemd/system/nextvision.service NV_SERVICE_BINARY=/usr/bin/nextvision \
    NV_SERVICE_CONFIG=/etc/nextvision/nextvision.toml \
    cargo test -p nextvision --test service
dpkg --purge nextvision
echo "== package installed, served, notified, stopped and purged"
