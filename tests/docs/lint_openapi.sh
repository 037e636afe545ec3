#!/usr/bin/env bash
# Lints docs/openapi.yaml with Redocly CLI (pinned below) and the rules of docs/redocly.yaml:
# the recommended ruleset at error severity, so any finding fails the test.
#
# Redocly is installed once per build tree with npm into $DS_TEST_BIN_DIR/tools (the npm
# registry is needed for that first run only; later runs are offline). Needs node >= 18.17 and
# npm (Debian 12: apt-get install nodejs npm). Without them, or when the install cannot reach
# the registry, the test prints why and is skipped (77).
set -euo pipefail

REDOCLY_VERSION=1.34.0
src="${DS_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
bin_dir="${DS_TEST_BIN_DIR:-$src/build/debug}"
tools="$bin_dir/tools"
redocly="$tools/node_modules/.bin/redocly"

skip() {
    echo "skip: $*" >&2
    exit 77
}

command -v node >/dev/null 2>&1 || skip "node is not installed (apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || skip "npm is not installed (apt-get install npm)"
# @redocly/cli 1.34 declares node >= 18.17.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
              process.exit(a > 18 || (a === 18 && b >= 17) ? 0 : 1)'; then
    skip "node $(node --version) is older than 18.17, which @redocly/cli $REDOCLY_VERSION needs"
fi

# No usage reports and no update check: the run must not depend on the network once installed.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

installed=""
if [ -x "$redocly" ]; then
    installed="$("$redocly" --version 2>/dev/null || true)"
fi
if [ "$installed" != "$REDOCLY_VERSION" ]; then
    echo "installing @redocly/cli@$REDOCLY_VERSION into $tools" >&2
    mkdir -p "$tools"
    log="$tools/npm-install.log"
    if ! npm install --prefix "$tools" --save-exact --no-audit --no-fund --loglevel=error \
        "@redocly/cli@$REDOCLY_VERSION" >"$log" 2>&1; then
        cat "$log" >&2
        skip "could not install @redocly/cli@$REDOCLY_VERSION with npm (see above)"
    fi
    installed="$("$redocly" --version)"
    if [ "$installed" != "$REDOCLY_VERSION" ]; then
        echo "error: npm installed @redocly/cli $installed, not $REDOCLY_VERSION" >&2
        exit 1
    fi
fi

# Exit status 1 on any error; recommended-strict makes every finding an error.
"$redocly" lint --config "$src/docs/redocly.yaml" "$src/docs/openapi.yaml"
