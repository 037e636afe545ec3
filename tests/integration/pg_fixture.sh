#!/usr/bin/env bash
# The test suite's PostgreSQL: one throwaway private cluster, made and run by the dossier binary
# itself (`dossier db start`, `dossier migrate`), shared by every test that needs a database.
#   pg_fixture.sh start ENV_FILE   start it and write ENV_FILE (KEY=VALUE lines, see below)
#   pg_fixture.sh stop ENV_FILE    stop it and remove its directory
# ctest runs these as the fixture `pg` (CMakeLists.txt). Tests read ENV_FILE through
# DS_TEST_PG_ENV: DS_PG_HOST, DS_PG_PORT, DS_PG_BINDIR, DS_PG_SUPER_DSN, DS_PG_OWNER_DSN,
# DS_PG_APP_DSN, DS_PG_DATA_DIR.
# The cluster lives under /tmp (PostgreSQL runs as the postgres user when we are root, and that
# user may not reach the build tree), in a fresh directory per run.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
action="${1:?usage: pg_fixture.sh start|stop ENV_FILE}"
env_file="${2:?usage: pg_fixture.sh start|stop ENV_FILE}"
# The directory is made fresh with mktemp (a predictable name could be made first by another
# local user) and remembered beside the env file, for stop.
dir_file="$env_file.dir"
export DOSSIER_LOG_LEVEL="${DOSSIER_LOG_LEVEL:-warn}"

stop() {
    local data=""
    if [ -f "$dir_file" ]; then data="$(cat "$dir_file")"; fi
    if [ -n "$data" ] && [ -d "$data" ]; then
        "$bin" db stop --data-dir "$data" || true
        rm -rf "$data"
    fi
    rm -f "$env_file" "$env_file.tmp" "$dir_file"
}

case "$action" in
start)
    stop # a cluster left over by an interrupted run
    data="$(mktemp -d /tmp/dossier-test.XXXXXX)"
    chmod 0711 "$data" # the postgres user must reach pg/ inside it
    echo "$data" >"$dir_file"
    "$bin" db start --data-dir "$data"
    "$bin" migrate --data-dir "$data" >/dev/null
    sock="$("$bin" db status --json --data-dir "$data" | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["socket_dir"])')"
    tmp="$env_file.tmp"
    (
        umask 077 # the file holds every role's password
        {
            echo "DS_PG_HOST=$sock"
            echo "DS_PG_PORT=5432"
            echo "DS_PG_BINDIR=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
            echo "DS_PG_SUPER_DSN=$("$bin" db conninfo --role super --data-dir "$data")"
            echo "DS_PG_OWNER_DSN=$("$bin" db conninfo --role owner --data-dir "$data")"
            echo "DS_PG_APP_DSN=$("$bin" db conninfo --role app --data-dir "$data")"
            echo "DS_PG_DATA_DIR=$data"
        } >"$tmp"
    )
    mv "$tmp" "$env_file"
    echo "test cluster up: $data"
    ;;
stop)
    stop
    ;;
*)
    echo "usage: pg_fixture.sh start|stop ENV_FILE" >&2
    exit 2
    ;;
esac
