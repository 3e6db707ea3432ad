# Sourced by scripts: makes a virtualenv under the repo (ignored by git) hold pinned Python
# tools. Idempotent: a second run with unchanged requirements costs a hash comparison.
#   ensure_python_env                        .venv from scripts/requirements-test.txt
#   ensure_python_env .venv-st scripts/requirements-schemathesis.txt
# (schemathesis has a venv of its own: its dependencies and SAM CLI's need not agree).

ensure_python_env() {
    local root venv requirements stamp want
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    venv="$root/${1:-.venv}"
    requirements="$root/${2:-scripts/requirements-test.txt}"
    stamp="$venv/.requirements.sha256"
    want=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    echo "==> setting up $(basename "$venv") from $(basename "$requirements")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
}
