# tests/e2e/lib/api.sh: sourced by e2e scripts that drive the HTTP API of the real binary with the
# suite's PostgreSQL (tests/e2e/lib/pg.sh). Needs $bin (the dossier binary) and $work (a private
# directory, removed by the caller's trap).
#   ds_api_start             starts `dossier serve`; sets $api_pid, $api_port, $api_base
#   ds_api_stop              stops it (SIGTERM, then waits)
#   ds_api_tenant SLUG       creates tenant SLUG (standard plan) with an admin
#                            admin@SLUG.test whose password is in $api_password
#   ds_api_login SLUG EMAIL PASSWORD
#                            logs in at SLUG.localhost; sets $api_access, $api_refresh
#   ds_api_call METHOD PATH [BODY] [CURL ARGS...]
#                            one request with $api_access as the bearer (when set); sets
#                            $api_status, $api_body, $api_headers (a file)
#   ds_api_json EXPR         evaluates a Python expression over json.loads($api_body) as `j`
# shellcheck shell=bash

ds_api_start() {
    "$bin" serve --data-dir "$DOSSIER_DATA_DIR" >"$work/serve.out" 2>"$work/serve.err" &
    api_pid=$!
    api_port=""
    local i
    for i in $(seq 1 300); do
        api_port="$(sed -n 's/.*"msg":"http listening".*"port":\([0-9]*\).*/\1/p' "$work/serve.err" |
            head -n1)"
        if [ -n "$api_port" ]; then break; fi
        if ! kill -0 "$api_pid" 2>/dev/null; then
            echo "dossier serve exited early:" >&2
            cat "$work/serve.err" >&2
            return 1
        fi
        sleep 0.1
    done
    if [ -z "$api_port" ]; then
        echo "dossier serve did not listen in 30 s" >&2
        return 1
    fi
    api_base="http://127.0.0.1:$api_port"
}

ds_api_stop() {
    if [ -n "${api_pid:-}" ] && kill -0 "$api_pid" 2>/dev/null; then
        kill -TERM "$api_pid"
        wait "$api_pid" || true
    fi
    api_pid=""
}

ds_api_tenant() {
    local slug="$1"
    api_password="admin password $slug $RANDOM$RANDOM"
    "$bin" tenant create --slug "$slug" --name "Tenant $slug" >/dev/null
    printf '%s' "$api_password" |
        "$bin" user create --tenant "$slug" --email "admin@$slug.test" --role admin \
            --password-stdin >/dev/null
}

ds_api_login() {
    local slug="$1" email="$2" password="$3"
    local body
    body="$(python3 -c 'import json,sys; print(json.dumps({"email": sys.argv[1], "password": sys.argv[2]}))' \
        "$email" "$password")"
    api_body="$(curl -s --max-time 20 -H 'Content-Type: application/json' \
        --resolve "$slug.localhost:$api_port:127.0.0.1" -d "$body" \
        "http://$slug.localhost:$api_port/v1/auth/login")"
    api_access="$(ds_api_json 'j["access_token"]')"
    api_refresh="$(ds_api_json 'j["refresh_token"]')"
}

ds_api_call() {
    local method="$1" path="$2" body="${3:-}"
    shift 3 2>/dev/null || shift $#
    local args=(-s --max-time 20 -X "$method" -o "$work/api_body" -D "$work/api_headers"
        -w '%{http_code}')
    if [ -n "${api_access:-}" ]; then args+=(-H "Authorization: Bearer $api_access"); fi
    if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' -d "$body"); fi
    api_status="$(curl "${args[@]}" "$@" "$api_base$path")"
    api_body="$(cat "$work/api_body")"
    api_headers="$work/api_headers"
}

ds_api_json() {
    printf '%s' "$api_body" | python3 -c 'import json,sys; j=json.load(sys.stdin); v='"$1"'; print(v if not isinstance(v, (dict, list)) else json.dumps(v))'
}
