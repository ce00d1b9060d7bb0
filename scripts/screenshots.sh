#!/usr/bin/env bash
# Regenerates the Dagster UI screenshots of docs/ui.md (docs/img/ui/*.png).
#
# NOT run in CI (it needs Chromium and a few minutes); run it by hand after a UI change:
#
#   bash scripts/screenshots.sh            # writes docs/img/ui/*.png
#   bash scripts/screenshots.sh OUT_DIR    # writes them elsewhere
#
# What it does, from the repository root, never touching ./data or ./.dagster_home:
#   1. a throwaway DAGSTER_HOME and HELIX_DATA_DIR under a temp dir; every HELIX_*, COINGLASS_*
#      and BYBIT_* variable of the caller's shell is unset first, so the run is the sandbox,
#      DuckDB and the paper executor whatever the shell has configured;
#   2. `helix demo` into them (the same as `make demo`);
#   3. `dagster dev -w workspace.yaml` on a free port with the same environment, in the
#      background, until http://127.0.0.1:PORT/server_info answers;
#   4. `npm ci --prefix scripts` (playwright-core only, from scripts/package-lock.json; no browser
#      is downloaded: the machine's Chromium is used, $CHROMIUM, default /usr/bin/chromium);
#   5. `node scripts/screenshots.mjs http://127.0.0.1:PORT OUT_DIR`;
#   6. always (trap) stops the servers it started and removes the temp dir (kept on failure,
#      with the demo and dagster dev logs, for a look).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=${1:-docs/img/ui}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM

for tool in node npm curl; do
  command -v "$tool" >/dev/null || { echo "screenshots: $tool is needed (Node 20 and npm; curl)" >&2; exit 1; }
done
[ -x "$CHROMIUM" ] || { echo "screenshots: no Chromium at $CHROMIUM (set CHROMIUM=/path/to/chromium)" >&2; exit 1; }

t0=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/helix-screenshots.XXXXXX")
DEV_PID=
ok=0

stop_servers() {
  # dagster dev runs in its own session (setsid): its process group is the webserver, the
  # daemon and the code servers it started, and nothing else. SIGINT (Ctrl-C) is what it shuts
  # down on cleanly; the group is killed if it is still there after a minute.
  [ -n "$DEV_PID" ] || return 0
  kill -INT "$DEV_PID" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 -- "-$DEV_PID" 2>/dev/null || break
    sleep 1
  done
  kill -KILL -- "-$DEV_PID" 2>/dev/null || true
  DEV_PID=
}

cleanup() {
  local rc=$?
  stop_servers
  if [ "$ok" = 1 ]; then
    rm -rf "$WORK"
  else
    echo "screenshots: failed (exit $rc); logs kept in $WORK (demo.log, dagster-dev.log)" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A clean, safe environment: the sandbox source, DuckDB, no Redis, the paper executor.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(HELIX_|COINGLASS_|BYBIT_)' || true)
export DAGSTER_HOME="$WORK/dagster_home"
export HELIX_DATA_DIR="$WORK/data"
export HELIX_EXECUTOR_MODE=paper
mkdir -p "$DAGSTER_HOME" "$HELIX_DATA_DIR"
cp helix_pipelines/cli/dagster_instance.yaml "$DAGSTER_HOME/dagster.yaml"

# The locked environment, as `make demo` / `make dev` would make it.
if [ ! -x .venv/bin/helix ] || [ ! -x .venv/bin/dagster ]; then
  make setup
fi
HELIX=$ROOT/.venv/bin/helix
DAGSTER=$ROOT/.venv/bin/dagster
PYTHON=$ROOT/.venv/bin/python

echo "screenshots: helix demo into $WORK ..."
t=$SECONDS
if ! "$HELIX" demo >"$WORK/demo.log" 2>&1; then
  tail -n 30 "$WORK/demo.log" >&2
  echo "screenshots: helix demo failed" >&2
  exit 1
fi
grep -E '^(done in|recorded)' "$WORK/demo.log" || true
demo_s=$((SECONDS - t))

PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
echo "screenshots: dagster dev on $BASE ..."
t=$SECONDS
# A background command of a script starts with SIGINT ignored, and dagster dev then ignores
# SIGTERM too (it copies SIGINT's handler): restore both before exec, so it can be stopped.
setsid "$PYTHON" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' \
  "$DAGSTER" dev -w workspace.yaml -h 127.0.0.1 -p "$PORT" >"$WORK/dagster-dev.log" 2>&1 </dev/null &
DEV_PID=$!
for _ in $(seq 1 240); do
  if curl -fsS -o /dev/null "$BASE/server_info" 2>/dev/null; then break; fi
  if ! kill -0 "$DEV_PID" 2>/dev/null; then
    tail -n 30 "$WORK/dagster-dev.log" >&2
    echo "screenshots: dagster dev exited before answering" >&2
    exit 1
  fi
  sleep 1
done
curl -fsS -o /dev/null "$BASE/server_info" || { echo "screenshots: $BASE/server_info never answered" >&2; exit 1; }
dev_s=$((SECONDS - t))

echo "screenshots: npm ci --prefix scripts (playwright-core, no browser download) ..."
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix scripts --no-audit --no-fund --loglevel=error

t=$SECONDS
node scripts/screenshots.mjs "$BASE" "$OUT"
shots_s=$((SECONDS - t))

stop_servers
# What the servers said that a reader of the screenshots should know about.
if grep -nE 'ERROR|Traceback|Exception' "$WORK/dagster-dev.log" >"$WORK/dev-errors.txt"; then
  echo "screenshots: dagster dev logged errors:"
  head -n 20 "$WORK/dev-errors.txt"
fi
ok=1
echo "screenshots: done in $((SECONDS - t0))s (demo ${demo_s}s, dagster dev start ${dev_s}s, screenshots ${shots_s}s): $OUT"
