# tests/e2e/lib/pg.sh: sourced by e2e scripts that run `dossier serve` or database commands against the suite's
# PostgreSQL (the ctest fixture `pg`, tests/integration/pg_fixture.sh):
#   ds_use_test_pg DATA_DIR
# exports DOSSIER_DATABASE__DSN / __OWNER_DSN (so dossier uses that server and manages nothing)
# and DOSSIER_DATA_DIR=DATA_DIR (for the blob and key stores), or exits 77 when the fixture's
# file is missing. Also sets DS_PG_* from the file.
# shellcheck shell=bash

ds_use_test_pg() {
    local env_file="${DS_TEST_PG_ENV:-}"
    if [ -z "$env_file" ] || [ ! -r "$env_file" ]; then
        echo "SKIP: DS_TEST_PG_ENV does not name the test cluster's file (run through ctest)"
        exit 77
    fi
    local key value
    while IFS='=' read -r key value; do
        case "$key" in
        DS_PG_*) export "$key=$value" ;;
        esac
    done <"$env_file"
    export DOSSIER_DATABASE__DSN="$DS_PG_APP_DSN"
    export DOSSIER_DATABASE__OWNER_DSN="$DS_PG_OWNER_DSN"
    export DOSSIER_DATA_DIR="$1"
    # Tests run side by side: every node's HTTP API takes a port of its own.
    export DOSSIER_HTTP__LISTEN="127.0.0.1:0"
}
