#!/usr/bin/env bash
# Runs a command with a throw-away PostgreSQL and Redis on loopback, then stops them and removes their data.
#
#   scripts/with-services.sh ./scripts/pytest.sh -m "not e2e"
#
# The command sees DATABASE_URL, CACHE_URL and REDIS_URL pointing at them (docs/testing.md). Debian's
# `postgresql` and `redis-server` are installed with apt when missing and we are root (CI on a clean
# machine); otherwise the script says what to install and fails. PostgreSQL refuses to run as root, so as
# root its server runs as the `postgres` user the Debian package creates.
set -euo pipefail

need_packages=()
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
[[ -x "$PG_BIN/initdb" ]] || need_packages+=(postgresql)
command -v redis-server >/dev/null || need_packages+=(redis-server)
if ((${#need_packages[@]})); then
  if [[ "$(id -u)" != 0 ]]; then
    echo "missing: sudo apt-get install -y ${need_packages[*]}" >&2
    exit 1
  fi
  echo "Installing ${need_packages[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work="$(mktemp -d /tmp/llmsite-services.XXXXXX)"
chmod 755 "$work"
pg_port="$(free_port)"
redis_port="$(free_port)"
as_pg=()
if [[ "$(id -u)" == 0 ]]; then
  as_pg=(runuser -u postgres --)
  mkdir -p "$work/pg"
  chown postgres "$work/pg"
fi

stop() {
  local rc=$?
  [[ -f "$work/redis.pid" ]] && kill "$(cat "$work/redis.pid")" 2>/dev/null || true
  [[ -f "$work/pg/data/postmaster.pid" ]] && "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $rc
}
trap stop EXIT INT TERM

# PostgreSQL: trust on loopback only, no fsync (a throw-away instance), enough connections for live servers.
"${as_pg[@]}" "$PG_BIN/initdb" -D "$work/pg/data" -U llmsite -A trust -E UTF8 --no-locale >/dev/null
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w start \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >/dev/null
"${as_pg[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U llmsite llmsite

# Redis: no persistence; databases enough for a cache, the channel layer and live servers' own.
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --daemonize yes \
  --dir "$work" --pidfile "$work/redis.pid" --logfile "$work/redis.log" --databases 64
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

export DATABASE_URL="postgres://llmsite@127.0.0.1:$pg_port/llmsite"
export CACHE_URL="redis://127.0.0.1:$redis_port/0"
export REDIS_URL="redis://127.0.0.1:$redis_port/1"
echo "PostgreSQL at 127.0.0.1:$pg_port, Redis at 127.0.0.1:$redis_port (removed when the command ends)"
"$@"
