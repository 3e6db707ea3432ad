# Sourced by scripts: the web dashboard's toolchain. Idempotent and quick on a second run.
#   ensure_web_deps   npm ci into web/node_modules when package-lock.json changed
#   build_web         type-check and build web/dist, with the API reference at dist/docs
#                     (about a second)
#   ensure_chromium   Debian's chromium for the browser tests (apt; no browser download)

ensure_web_deps() {
    local web stamp want
    web="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/web"
    stamp="$web/node_modules/.lock.sha256"
    want=$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    echo "==> npm ci (web/)"
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
}

build_web() {
    local web
    web="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/web"
    (cd "$web" && npm run --silent build)
}

ensure_chromium() {
    if [[ -x /usr/bin/chromium ]]; then
        return 0
    fi
    echo "==> apt-get install chromium (for the browser tests)"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get install -y -q chromium > /dev/null 2>&1 || {
        $sudo apt-get update -q > /dev/null
        $sudo apt-get install -y -q chromium > /dev/null
    }
}
