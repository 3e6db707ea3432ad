# Sourced by scripts: makes .venv (under the repo, ignored by git) hold the pinned Python tools.
# Idempotent: a second run with unchanged requirements costs a hash comparison.

ensure_python_env() {
    local root requirements stamp want
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    requirements="$root/scripts/requirements-test.txt"
    stamp="$root/.venv/.requirements.sha256"
    want=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [[ -x "$root/.venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    echo "==> setting up .venv (moto, cfn-lint, SAM CLI)"
    python3 -m venv "$root/.venv"
    "$root/.venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    "$root/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
}
