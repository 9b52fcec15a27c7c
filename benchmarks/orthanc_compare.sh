#!/usr/bin/env bash
# Uploads and ?tag= lookups side by side with Orthanc, in one interleaved run (issue 15).
#
#   benchmarks/orthanc_compare.sh BENCH_DIR BIG_FILE [extra compare.py options ...]
#
# BENCH_DIR holds the shared harness (start_orthanc.sh, stop_orthanc.sh, compare.py,
# make_dataset.py: see its README); nothing of it is copied into this repository. BIG_FILE is the
# 3.6 MB DX sample (IM000001). The script builds the data set in a temp folder, starts a private
# loopback Orthanc (fsync per file, its defaults) and `lightbox` (LIGHTBOX_WORKERS workers, default 2,
# storage + SQLite index in a temp folder, fsync and JSON access logs on, metrics on), runs
# compare.py's upload and tag phases with both PIDs (server CPU per request), and stops both.
#
# Environment: PY (Python with httpx, pydicom, numpy, pillow; default .venv/bin/python),
# LIGHTBOX (the command that starts the service, default ".venv/bin/python -m app", the same entry point
# as the `lightbox` script: on a machine loaded past ~10, the console script's spawned workers missed
# uvicorn's 5 s start-up health check and were restarted in a loop), ORTHANC_PORT (8046), OURS_PORT (8346), LIGHTBOX_WORKERS (2),
# PHASES (upload_small_c8,upload_big_c8,tag_c16), REPEATS (3), SCALE (0.5), OUT (results JSON path),
# PROFILE_DIR (if set: py-spy records a flame graph of each worker under load there, GIL-holding
# samples only; PY_SPY names the py-spy binary, default py-spy on PATH), LOG_COPY (keep lightbox's log).
set -euo pipefail

BENCH_DIR="$(cd "${1:?usage: orthanc_compare.sh BENCH_DIR BIG_FILE [compare.py options]}" && pwd)"
BIG_FILE="${2:?usage: orthanc_compare.sh BENCH_DIR BIG_FILE [compare.py options]}"
shift 2
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
LIGHTBOX="${LIGHTBOX:-$REPO/.venv/bin/python -m app}"
ORTHANC_PORT="${ORTHANC_PORT:-8046}"
OURS_PORT="${OURS_PORT:-8346}"
WORKERS="${LIGHTBOX_WORKERS:-2}"
PHASES="${PHASES:-upload_small_c8,upload_big_c8,tag_c16}"
REPEATS="${REPEATS:-3}"
SCALE="${SCALE:-0.5}"

TMP="$(mktemp -d -t lightbox-vs-orthanc.XXXXXX)"
OURS_PID=""
ORTHANC_WORKDIR=""
cleanup() {
  if [ -f "$TMP/ours.log" ]; then
    echo "# lightbox answered $(grep -c '"status":5' "$TMP/ours.log" || true) requests with a 5xx" >&2
    # why, when it did: the warnings and errors it logged (worker restarts, a stalled audit trail, ...)
    grep -E '"level":"(warning|error|critical)"' "$TMP/ours.log" | sed -E 's/"(time|request_id)":"[^"]*",//g' | cut -c1-400 | sort | uniq -c | sort -rn | head -n 20 >&2 || true
    if [ -n "${LOG_COPY:-}" ]; then cp "$TMP/ours.log" "$LOG_COPY"; fi
  fi
  if [ -n "$OURS_PID" ] && kill -0 "$OURS_PID" 2>/dev/null; then
    kill -TERM "$OURS_PID"
    wait "$OURS_PID" 2>/dev/null || true
  fi
  if [ -n "$ORTHANC_WORKDIR" ]; then "$BENCH_DIR/stop_orthanc.sh" "$ORTHANC_WORKDIR" --rm || true; fi
  rm -rf -- "$TMP"
}
trap cleanup EXIT

"$PY" "$BENCH_DIR/make_dataset.py" "$TMP/data" "$BIG_FILE" >&2

eval "$(ORTHANC_PORT="$ORTHANC_PORT" ORTHANC_WORKDIR="$TMP/orthanc" ORTHANC_INSTALL=0 "$BENCH_DIR/start_orthanc.sh")"

mkdir -p "$TMP/ours"
LIGHTBOX_PORT="$OURS_PORT" LIGHTBOX_HOST=127.0.0.1 LIGHTBOX_WORKERS="$WORKERS" LIGHTBOX_STORAGE_DIR="$TMP/ours" \
  LIGHTBOX_LOG_FORMAT=json $LIGHTBOX > "$TMP/ours.log" 2>&1 &
OURS_PID=$!
for _ in $(seq 1 150); do
  curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$OURS_PORT/readyz" && break
  kill -0 "$OURS_PID" 2>/dev/null || { echo "lightbox exited early:" >&2; tail -n 30 "$TMP/ours.log" >&2; exit 1; }
  sleep 0.2
done
curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$OURS_PORT/readyz" || { echo "lightbox is not ready" >&2; exit 1; }
echo "# orthanc pid $ORTHANC_PID on $ORTHANC_URL; lightbox pid $OURS_PID ($WORKERS workers) on :$OURS_PORT" >&2

PROFILERS=()
if [ -n "${PROFILE_DIR:-}" ]; then
  mkdir -p "$PROFILE_DIR"
  targets="$(pgrep -P "$OURS_PID" || true)"  # the workers; with one worker, the server process itself
  for child in ${targets:-$OURS_PID}; do
    "${PY_SPY:-py-spy}" record --gil --nolineno --rate 100 --format flamegraph -o "$PROFILE_DIR/worker-$child.svg" \
      --pid "$child" > /dev/null 2>&1 &
    PROFILERS+=("$!")
  done
fi

"$PY" "$BENCH_DIR/compare.py" --orthanc "$ORTHANC_URL" --ours "http://127.0.0.1:$OURS_PORT" --data "$TMP/data" \
  --orthanc-pid "$ORTHANC_PID" --ours-pid "$OURS_PID" --phases "$PHASES" --repeats "$REPEATS" --scale "$SCALE" \
  --ours-ceiling-path /healthz --no-probe ${OUT:+--json-out "$OUT"} "$@"

for profiler in "${PROFILERS[@]}"; do kill -INT "$profiler" 2>/dev/null || true; done
for profiler in "${PROFILERS[@]}"; do wait "$profiler" 2>/dev/null || true; done
