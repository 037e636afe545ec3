# Sourced by scripts/run and scripts/test: installs the Debian 12 packages the build needs,
# asking apt only when one is missing. Needs root (or sudo).
# shellcheck shell=bash

DS_DEPS=(
    build-essential clang libclang-rt-14-dev cmake ninja-build pkg-config
    libuv1-dev libnng-dev libmsgpack-dev libcmocka-dev
    libyaml-dev libpq-dev libssl-dev libargon2-dev
    postgresql-15 postgresql-client-15 openssl
    node-llhttp libjansson-dev curl jq
    clang-format clang-tidy python3 time
)
# The OpenAPI lint (tests/docs/lint_openapi.sh) runs @redocly/cli from npm: Debian's nodejs
# (18.19) and npm, unless a node with npm is already installed (nodesource ships its own npm).
if ! command -v npm >/dev/null 2>&1; then
    DS_DEPS+=(nodejs npm)
fi

ds_install_deps() {
    local missing=() pkg
    for pkg in "${DS_DEPS[@]}" "$@"; do
        if ! dpkg -s "$pkg" >/dev/null 2>&1; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    echo "installing: ${missing[*]}" >&2
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: missing packages (${missing[*]}) and not root; run with sudo" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

# Configures (once) and builds one mode's tree: ds_build <debug|tsan|release>.
ds_build() {
    local mode="$1" dir="build/$1"
    if [ ! -f "$dir/build.ninja" ]; then
        cmake -S . -B "$dir" -G Ninja -DDS_BUILD="$mode"
    fi
    cmake --build "$dir"
}
