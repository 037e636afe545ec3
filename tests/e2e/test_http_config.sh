#!/usr/bin/env bash
# End-to-end: the http section of the config takes effect through the real binary. A node is
# started with a config file setting small limits, a short header timeout, a per-IP connection
# cap, one CORS origin and 127.0.0.1 as a trusted proxy, then again with the defaults, and each
# setting is shown by what a client (curl, python3 sockets) and the access log see: 414, 431,
# 413, a slowloris cut off while another client is served, an excess connection closed, CORS
# headers and preflights, the client address taken from X-Forwarded-For only from a trusted
# proxy. Also `config show` and `config check` on the new keys.
# Needs DOSSIER_BIN, DS_SOURCE_DIR and DS_TEST_PG_ENV (set by ctest), curl and python3.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
src="${DS_SOURCE_DIR:?DS_SOURCE_DIR must name the source tree}"
# shellcheck source=tests/e2e/lib/pg.sh
. "$src/tests/e2e/lib/pg.sh"
# shellcheck source=tests/e2e/lib/api.sh
. "$src/tests/e2e/lib/api.sh"

for tool in curl python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: $tool is not installed"
        exit 77
    fi
done

work="$(mktemp -d /tmp/ds-e2e-http-config.XXXXXX)"
cleanup() {
    local rc=$?
    ds_api_stop
    if [ "$rc" -ne 0 ] && [ -f "$work/serve.err" ]; then
        echo "--- server log (warnings and errors) ---" >&2
        grep -v '"level":"\(debug\|info\)"' "$work/serve.err" | tail -n 40 >&2 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
ds_use_test_pg "$work/data"
export DOSSIER_LOG_LEVEL=info

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }
check() { # check WANT GOT WHAT
    if [ "$1" = "$2" ]; then pass "$3"; else fail "$3: want '$1', got '$2'"; fi
}
# status [CURL ARGS...] URL: the status code; headers in $work/h, body in $work/b.
status() { curl -s --max-time 20 -D "$work/h" -o "$work/b" -w '%{http_code}' "$@"; }
header() { grep -i "^$1:" "$work/h" | head -n1 | cut -d' ' -f2- | tr -d '\r' || true; }
# peer_of REQUEST_ID: the peer field of that request's access log line (waits for it, 10 s).
peer_of() {
    local i line
    for i in $(seq 1 100); do
        line="$(grep '"msg":"http request"' "$work/serve.err" | grep "\"request_id\":\"$1\"" |
            head -n1 || true)"
        if [ -n "$line" ]; then break; fi
        sleep 0.1
    done
    printf '%s' "$line" | python3 -c 'import json,sys; t=sys.stdin.read(); print(json.loads(t)["peer"] if t else "")'
}

# --- config show / check ----------------------------------------------------------------------
cat >"$work/http.yaml" <<'EOF'
http:
  cors_origins: ["https://app.example.com"]
  trusted_proxies:
    - 127.0.0.1
  header_timeout_ms: 500
  max_connections_ip: 3
  limits:
    max_url: 256
    max_headers: 8
    max_body: 1KiB
    stream_threshold: 1KiB
EOF
shown="$(DOSSIER_CONFIG="$work/http.yaml" "$bin" config show)"
for want in '  cors_origins: ["https://app.example.com"]' '  trusted_proxies: ["127.0.0.1"]' \
    '  header_timeout_ms: 500' '  max_connections_ip: 3' '  idle_timeout_ms: 60000' \
    '  limits:' '    max_url: 256' '    max_body: 1024' '    max_headers: 8'; do
    if grep -qxF -- "$want" <<<"$shown"; then pass "config show: $want"; else fail "config show lacks '$want'"; fi
done
shown="$(DOSSIER_HTTP__CORS_ORIGINS='https://a.example, http://localhost:3000' "$bin" config show)"
if grep -qxF '  cors_origins: ["https://a.example", "http://localhost:3000"]' <<<"$shown"; then
    pass "config show: a comma-separated list from the environment"
else
    fail "config show with DOSSIER_HTTP__CORS_ORIGINS: $(grep cors_origins <<<"$shown")"
fi
printf 'http:\n  cors_origins:\n    - https://app.example.com\n    - https://*.example.com\n' >"$work/bad.yaml"
rc=0
err="$("$bin" config check "$work/bad.yaml" 2>&1)" || rc=$?
check 1 "$rc" "config check refuses a wildcard origin"
if [[ "$err" == *bad.yaml:4:*http.cors_origins*wildcards* ]]; then
    pass "the bad origin is reported with its line"
else
    fail "config check said: $err"
fi
printf 'http:\n  trusted_proxies: [10.0.0.0/8]\n' >"$work/bad.yaml"
rc=0
err="$("$bin" config check "$work/bad.yaml" 2>&1)" || rc=$?
if [ "$rc" = 1 ] && [[ "$err" == *bad.yaml:2:*http.trusted_proxies*ranges* ]]; then
    pass "config check refuses an address range as a proxy"
else
    fail "config check said ($rc): $err"
fi

# --- a node with the small limits -------------------------------------------------------------
export DOSSIER_CONFIG="$work/http.yaml"
ds_api_start

long="$(python3 -c 'print("a" * 300)')"
check 414 "$(status "$api_base/healthz?q=$long")" "a target over max_url (256) gets 414"
if grep -q 'problems/uri-too-long"' "$work/b"; then pass "414 is a uri-too-long problem"; else fail "414 body: $(cat "$work/b")"; fi
check 200 "$(status "$api_base/healthz?q=${long:0:200}")" "a target under max_url is served"

hdrs=()
for i in 1 2 3 4 5 6; do hdrs+=(-H "X-Extra-$i: v"); done
check 431 "$(status "${hdrs[@]}" "$api_base/healthz")" "9 header lines over max_headers (8) get 431"
if grep -q 'problems/request-header-too-large"' "$work/b"; then pass "431 is a request-header-too-large problem"; else fail "431 body: $(cat "$work/b")"; fi
check 200 "$(status "${hdrs[@]:0:8}" "$api_base/healthz")" "7 header lines are served"

python3 -c 'print("{\"email\":\"" + "x" * 2000 + "\"}")' >"$work/big.json"
check 413 "$(status -H 'Content-Type: application/json' --data-binary "@$work/big.json" \
    "$api_base/v1/auth/login")" "a body over max_body (1 KiB) gets 413"
if grep -q 'problems/content-too-large"' "$work/b"; then pass "413 is a content-too-large problem"; else fail "413 body: $(cat "$work/b")"; fi
got="$(status -H 'Content-Type: application/json' --data-binary '{"email":"a@b.c"}' "$api_base/v1/auth/login")"
if [ "$got" != 413 ] && [ "$got" != 000 ]; then pass "a small body passes the limit ($got)"; else fail "a small body: $got"; fi

# CORS: the configured origin, and another.
check 200 "$(status -H 'Origin: https://app.example.com' "$api_base/healthz")" "healthz from the allowed origin"
check "https://app.example.com" "$(header Access-Control-Allow-Origin)" "the allowed origin gets Access-Control-Allow-Origin"
check 204 "$(status -X OPTIONS -H 'Origin: https://app.example.com' \
    -H 'Access-Control-Request-Method: POST' "$api_base/v1/users")" "a preflight from the allowed origin gets 204"
check "https://app.example.com" "$(header Access-Control-Allow-Origin)" "the preflight allows the origin"
if [ -n "$(header Access-Control-Allow-Methods)" ]; then pass "the preflight lists the methods"; else fail "no Access-Control-Allow-Methods"; fi
check 200 "$(status -H 'Origin: https://evil.example' "$api_base/healthz")" "healthz from another origin"
check "" "$(header Access-Control-Allow-Origin)" "another origin gets no Access-Control-Allow-Origin"
check 403 "$(status -X OPTIONS -H 'Origin: https://evil.example' \
    -H 'Access-Control-Request-Method: POST' "$api_base/v1/users")" "a preflight from another origin gets 403"
if grep -q 'problems/cors-origin-denied"' "$work/b"; then pass "403 is a cors-origin-denied problem"; else fail "403 body: $(cat "$work/b")"; fi
check "" "$(header Access-Control-Allow-Origin)" "the denied preflight allows nothing"

# X-Forwarded-For from a trusted proxy (127.0.0.1 is the socket peer here).
check 200 "$(status -H 'X-Request-Id: xff-trusted' -H 'X-Forwarded-For: 203.0.113.9' "$api_base/healthz")" "healthz through the trusted proxy"
check 203.0.113.9 "$(peer_of xff-trusted)" "the access log shows the forwarded client address"

# Slowloris and the per-IP cap, with sockets (python3). Every loop is bounded.
sockets_rc=0
python3 - "$api_port" <<'PY' || sockets_rc=$?
import socket, sys, time

port = int(sys.argv[1])
bad = 0


def say(ok, what):
    global bad
    print(("ok: " if ok else "FAIL: ") + what, file=sys.stdout if ok else sys.stderr)
    bad += 0 if ok else 1


def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def get(s):
    """One keep-alive GET /healthz on s: the response's status line, or '' if closed."""
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                return ""
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = 0
        for h in head.split(b"\r\n")[1:]:
            name, _, value = h.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                return ""
            body += chunk
        return head.split(b"\r\n", 1)[0].decode("latin-1")
    except OSError:
        return ""


def closed_by_server(s, limit_s):
    """Reads until the server closes s (EOF or reset); returns (closed, bytes read)."""
    s.settimeout(0.2)
    data = b""
    for _ in range(int(limit_s / 0.2)):
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return True, data
        if not chunk:
            return True, data
        data += chunk
    return False, data


# Slowloris: a head that trickles in, a byte at a time, never ending. header_timeout_ms is
# 500; it must be cut off well before the default (10 s), while another client is served.
slow = conn()
slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
other = conn()
line = get(other)
say(line.endswith("200 OK"), "another client is served while the slow head trickles in (%r)" % line)
other.close()
slow.settimeout(0.2)
data = b""
cut = False
for _ in range(35):  # 7 s at most
    try:
        slow.sendall(b"a")
    except OSError:
        cut = True
        break
    try:
        chunk = slow.recv(4096)
    except socket.timeout:
        continue
    except OSError:
        cut = True
        break
    if not chunk:
        cut = True
        break
    data += chunk
if not cut:
    cut, more = closed_by_server(slow, 1.0)
    data += more
slow.close()
say(cut, "the slow client's connection was closed by the server")
say(data.startswith(b"HTTP/1.1 408"), "it was answered 408 first (%r)" % data[:40])

# max_connections_ip is 3: three connections served at once, a fourth closed at once.
held = []
for _ in range(50):
    if len(held) == 3:
        break
    s = conn()
    if get(s).endswith("200 OK"):
        held.append(s)
    else:
        s.close()  # an earlier connection not yet gone from the server's count
        time.sleep(0.1)
say(len(held) == 3, "three connections from one IP are served together")
extra = conn()
try:
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
except OSError:
    pass
closed, data = closed_by_server(extra, 10)
extra.close()
say(closed and not data, "a fourth connection is closed without an answer (%r)" % data[:40])
held.pop().close()
served = False
for _ in range(50):  # once the server has seen the close, a new one is let in
    s = conn()
    served = get(s).endswith("200 OK")
    s.close()
    if served:
        break
    time.sleep(0.1)
say(served, "after one of them closed, a new connection is served")
for s in held:
    s.close()
sys.exit(1 if bad else 0)
PY
if [ "$sockets_rc" = 0 ]; then pass "socket checks"; else fail "socket checks (see above)"; fi
if grep -q '"msg":"http connection refused"' "$work/serve.err"; then pass "the refused connection is logged"; else fail "no 'http connection refused' log line"; fi
ds_api_stop

# --- the same node with the defaults ----------------------------------------------------------
printf '# nothing: the defaults\n' >"$work/http.yaml"
ds_api_start
check 200 "$(status "$api_base/healthz?q=$long")" "with the defaults a 300-byte target is served"
check 200 "$(status "${hdrs[@]}" "$api_base/healthz")" "with the defaults 9 header lines are served"
check 200 "$(status -H 'Origin: https://app.example.com' "$api_base/healthz")" "healthz with an Origin"
check "" "$(header Access-Control-Allow-Origin)" "no origin is allowed by default"
check 403 "$(status -X OPTIONS -H 'Origin: https://app.example.com' \
    -H 'Access-Control-Request-Method: GET' "$api_base/healthz")" "no preflight is allowed by default"
check 200 "$(status -H 'X-Request-Id: xff-untrusted' -H 'X-Forwarded-For: 203.0.113.9' "$api_base/healthz")" "healthz with X-Forwarded-For, no proxy trusted"
check 127.0.0.1 "$(peer_of xff-untrusted)" "without trusted proxies the socket peer is logged"
ds_api_stop

if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all http config checks passed"
