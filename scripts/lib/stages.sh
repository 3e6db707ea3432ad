# Sourced by scripts/test: stages with their elapsed time, and stages run side by side.
#   stage NAME                  prints "==> NAME" with the seconds since the run started
#   background NAME CMD...      runs CMD in the background, its output to a log file
#   await NAME                  waits for it, prints its log, and fails if it failed
# Background output is held back and printed whole, so logs of parallel stages do not mix.

STAGES_STARTED=${STAGES_STARTED:-$(date +%s)}
STAGES_DIR=$(mktemp -d)
declare -A STAGE_PIDS=()

stage() {
    echo "==> $1 (at $(( $(date +%s) - STAGES_STARTED )) s)"
}

background() {
    local name=$1
    shift
    # A process group of its own (setsid: the pid is the group's id), so stopping it stops
    # everything it started: servers, browsers, installers.
    setsid "$@" > "$STAGES_DIR/$name.log" 2>&1 < /dev/null &
    STAGE_PIDS[$name]=$!
    echo "==> started in the background: $name (at $(( $(date +%s) - STAGES_STARTED )) s)"
}

await() {
    local name=$1 status=0
    wait "${STAGE_PIDS[$name]}" || status=$?
    unset "STAGE_PIDS[$name]"
    echo "==> $name finished (at $(( $(date +%s) - STAGES_STARTED )) s), its output:"
    cat "$STAGES_DIR/$name.log"
    if [[ $status -ne 0 ]]; then
        echo "==> $name FAILED (exit $status)" >&2
        return "$status"
    fi
}

# On any exit: stop what is still running in the background (its process group) and tidy up.
stop_background() {
    local pid
    for pid in "${STAGE_PIDS[@]}"; do
        kill -- "-$pid" 2>/dev/null || true
    done
    rm -rf "$STAGES_DIR"
}
