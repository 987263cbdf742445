#!/usr/bin/env bash
# End-to-end test of the terminal UI: drives the real binary in tmux. Starts
# `qtune tui -c configs/default.yaml --session $TMP/s.json`, waits for stage 1, selects a
# layer (j), toggles it (space), waits for its re-evaluation, views stage 1's best (v, header
# "viewing #0"), goes back (Esc), adopts it (a, y), saves (s), quits (q, confirming if asked),
# then checks that the session file records the toggle, its metric and the adoption.
#
#   tests/tui/e2e.sh                      # 80x24, target/release/qtune
#   COLS=200 ROWS=60 tests/tui/e2e.sh     # a large terminal
#   QTUNE=path/to/qtune KEEP=1 tests/tui/e2e.sh   # keep $TMP (screens, session) for a look
#
# Needs tmux and python3 (apt-get install -y tmux). Exit 0 pass, 1 fail, 77 skipped (no tmux).
set -euo pipefail
cd "$(dirname "$0")/../.."
QTUNE=${QTUNE:-target/release/qtune}
QTUNE=$(realpath "$QTUNE")
COLS=${COLS:-80}
ROWS=${ROWS:-24}
TIMEOUT=${TIMEOUT:-300}
if ! command -v tmux >/dev/null; then
    echo "e2e: skipped, no tmux (apt-get install -y tmux)"
    exit 77
fi
TMP=$(mktemp -d)
SES="qtune-e2e-$$"
cleanup() {
    tmux kill-session -t "$SES" 2>/dev/null || true
    if [ -z "${KEEP:-}" ]; then rm -rf "$TMP"; else echo "e2e: kept $TMP"; fi
}
trap cleanup EXIT

screen() { tmux capture-pane -p -t "$SES"; }
fail() {
    echo "e2e: FAIL: $*"
    echo "---- screen ----"
    screen || true
    exit 1
}
# wait_for PATTERN [SECONDS]: polls the screen for an extended regex
wait_for() {
    local deadline=$((SECONDS + ${2:-$TIMEOUT}))
    until screen | grep -Eq -- "$1"; do
        [ $SECONDS -lt $deadline ] || fail "timed out waiting for /$1/"
        sleep 0.2
    done
}

tmux new-session -d -s "$SES" -x "$COLS" -y "$ROWS" \
    "cd '$TMP' && env LANG=C.UTF-8 TERM=xterm-256color '$QTUNE' tui -c '$PWD/configs/default.yaml' --session '$TMP/s.json'; echo \$? > '$TMP/exit'; sleep 600"

wait_for "stage 1 done|flow finished"
screen > "$TMP/screen-stage1.txt"
echo "e2e: stage 1 finished ($COLS x $ROWS)"

tmux send-keys -t "$SES" j
sleep 0.3
tmux send-keys -t "$SES" Space
wait_for "excluded: INT8"
screen > "$TMP/screen-toggle.txt"
LAYER=$(grep -Eo '[^ ]+ excluded: INT8' "$TMP/screen-toggle.txt" | head -1 | cut -d' ' -f1)
[ -n "$LAYER" ] || fail "no toggled layer on screen"
echo "e2e: toggled $LAYER: $(grep -Eo 'excluded: INT8.*' "$TMP/screen-toggle.txt" | head -1)"

# view stage 1's best in every panel (v), back (Esc), view again and adopt it (a asks: the
# current state is the toggle, the user's work), then x with nothing running
tmux send-keys -t "$SES" v
wait_for "viewing #0" 10
screen | head -1 | grep -q "viewing #0" || fail "the header does not say 'viewing #0'"
tmux send-keys -t "$SES" Escape
wait_for "back to the current state" 10
screen | head -1 | grep -q "current #" || fail "the header does not say 'current #N' after Esc"
tmux send-keys -t "$SES" v
wait_for "viewing #0" 10
tmux send-keys -t "$SES" a
wait_for "adopt\?" 10
tmux send-keys -t "$SES" y
wait_for "#0 is now the current state" 60
screen | head -1 | grep -q "current #0" || fail "the header does not say 'current #0' after adopting"
echo "e2e: viewed and adopted #0"
tmux send-keys -t "$SES" x
wait_for "nothing to cancel" 10

tmux send-keys -t "$SES" s
wait_for "saved " 30
tmux send-keys -t "$SES" q
sleep 0.5
if screen | grep -q "quit?"; then tmux send-keys -t "$SES" y; fi
for _ in $(seq 100); do [ -f "$TMP/exit" ] && break; sleep 0.1; done
[ -f "$TMP/exit" ] || fail "qtune did not exit after q"
[ "$(cat "$TMP/exit")" = 0 ] || fail "qtune exited with $(cat "$TMP/exit")"

python3 - "$TMP/s.json" "$LAYER" <<'PY'
import json, sys
path, layer = sys.argv[1], sys.argv[2]
s = json.load(open(path))
actions = [e["action"] for e in s["log"]]
assert f"exclude {layer}" in actions, f"no 'exclude {layer}' in the log: {actions}"
users = [e for e in s["evaluations"] if e["origin"] == "user" and layer in e["exclude"]]
assert users, "no user evaluation excluding " + layer
m = users[-1]["report"]["int8"]
assert isinstance(m, (int, float)), m
assert f"adopt #0" in actions, f"no 'adopt #0' in the log: {actions}"
assert s["current"]["evaluation"] == 0, s["current"]
assert layer not in s["current"]["exclude"], s["current"]
print(f"e2e: session records 'exclude {layer}' (INT8 {m:.4f}), then 'adopt #0' as the current state")
PY
echo "e2e: PASS"
