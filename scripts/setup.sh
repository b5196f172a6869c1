#!/usr/bin/env bash
# Installs what Outpost's tests and demo need, skipping whatever is already present:
# Debian services (apt) and the npm workspace (npm ci from the lock file), then builds.
# Idempotent: a second run only checks and exits in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

# binary → Debian package that provides it
declare -A NEEDS=(
  [redis-server]=redis-server
  [victoria-metrics]=victoria-metrics
  [influxd]=influxdb
  [mosquitto]=mosquitto
  [mosquitto_pub]=mosquitto-clients
  [socat]=socat
  [chromium]=chromium
)
missing=()
for bin in "${!NEEDS[@]}"; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
    missing+=("${NEEDS[$bin]}")
  fi
done
# PostgreSQL server binaries live outside PATH on Debian.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "[setup] need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts some daemons through policy-rc.d/systemd where present; tests start their own.
else
  log "Debian services present"
fi

# npm packages: reinstall only when the lock file changed since the last install.
stamp=node_modules/.outpost-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "npm packages up to date"
else
  export SCARF_ANALYTICS=false  # swagger-ui-dist pulls a postinstall that would phone home
  log "npm ci"
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi

log "building workspace"
npx turbo run build --output-logs=errors-only
log "done: 'npm start' runs the platform, 'npm test' runs every test"
