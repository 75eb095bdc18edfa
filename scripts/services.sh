#!/usr/bin/env bash
# Makes sure Redis and PostgreSQL answer at REDIS_URL and DATABASE_URL.
# When a local one is not answering it is started; when its package is missing and we are
# root on a machine with apt, it is installed first; otherwise we say what to install.
set -euo pipefail

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/analytics}"

host_port() {  # URL default_port -> "host port"
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1].replace("redis+cluster://", "redis://"))
print(url.hostname or "127.0.0.1", url.port or int(sys.argv[2]))
PY
}

answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() {  # host port name
  for _ in $(seq 1 60); do answers "$1" "$2" && return 0; sleep 0.5; done
  echo "services: $3 did not start on $1:$2" >&2
  exit 1
}

is_local() { [[ "$1" == "127.0.0.1" || "$1" == "localhost" || "$1" == "::1" ]]; }

apt_install() {
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "services: installing $* with apt-get" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "services: please install $* (for example: sudo apt-get install $*)" >&2
    exit 1
  fi
}

read -r rhost rport < <(host_port "$REDIS_URL" 6379)
if ! answers "$rhost" "$rport"; then
  is_local "$rhost" || { echo "services: Redis at $rhost:$rport does not answer" >&2; exit 1; }
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /tmp/analytics-redis
  echo "services: starting redis-server on port $rport" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port "$rport" --save "" --appendonly no \
    --dir /tmp/analytics-redis --logfile /tmp/analytics-redis/redis.log
  wait_for "$rhost" "$rport" Redis
fi

read -r phost pport < <(host_port "$DATABASE_URL" 5432)
if ! answers "$phost" "$pport"; then
  is_local "$phost" || { echo "services: PostgreSQL at $phost:$pport does not answer" >&2; exit 1; }
  installed_now=0
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql
    installed_now=1
  fi
  if command -v pg_ctlcluster >/dev/null && [[ -n "$(ls /etc/postgresql 2>/dev/null)" ]]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if [[ $installed_now -eq 1 ]]; then
      # A cluster we just created: let local connections in without a password, as the
      # default DATABASE_URL expects.
      hba="/etc/postgresql/$version/main/pg_hba.conf"
      sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    fi
    echo "services: starting PostgreSQL $version" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  else
    echo "services: PostgreSQL is installed but no cluster was found; create one with pg_createcluster" >&2
    exit 1
  fi
  wait_for "$phost" "$pport" PostgreSQL
fi
echo "services: Redis at $rhost:$rport and PostgreSQL at $phost:$pport answer" >&2
