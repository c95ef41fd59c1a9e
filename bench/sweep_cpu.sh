#!/usr/bin/env bash
# One CPU-scale sweep of the KD weights through the platform, as a user runs it (issue 15).
#
#   bench/sweep_cpu.sh [TRIALS] [PARALLEL]        # default 8 trials, 2 at once
#
# Needs the study's COCO track and teacher (`make study`, or `python -m bench.study --scale
# cpu --teachers-only`): runs/study-cpu/data/synth and runs/study-cpu/runs/coco/teacher/seed0.
# Starts an embedded platform (SQLite, local blobs, serverless broker) in a temporary folder:
# the API and one worker with PARALLEL one-thread processes. It uploads the benchmark and the
# teacher, submits the default HKD spec of the study's scale on the val split as a plain job
# (the reference), then the sweep (examples/sweep_space.yaml's space, TPE, median pruner),
# waits for both and prints the sweep (trials, pruned, best val AP_small and parameters) and
# the reference's val AP_small. Everything stays in the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-8}
PARALLEL=${2:-2}
BIN=${BIN:-.venv/bin}
STUDY=${STUDY:-runs/study-cpu}
PORT=${PORT:-8765}
DATA=$STUDY/data/synth
TEACHER=$STUDY/runs/coco/teacher/seed0/job/teacher.safetensors
[[ -d $DATA && -f $TEACHER ]] || { echo "missing $DATA or $TEACHER: train the study's teacher first" >&2; exit 2; }

WORK=$(mktemp -d /tmp/distillery-sweep.XXXXXX)
export DISTILLERY_DATA_DIR=$WORK/data DISTILLERY_SERVER=http://127.0.0.1:$PORT OMP_NUM_THREADS=1
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$BIN/distillery" admin init >/dev/null
DISTILLERY_TOKEN=$("$BIN/distillery" admin bootstrap --team bench bench@example.com | tail -1)
export DISTILLERY_TOKEN
"$BIN/distillery" serve --no-worker --port "$PORT" --log-level warning >"$WORK/api.log" 2>&1 &
pids+=($!)
"$BIN/distillery" worker --concurrency "$PARALLEL" >"$WORK/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 60); do curl -sf "$DISTILLERY_SERVER/api/v1/health" >/dev/null && break; sleep 1; done

(cd "$DATA" && zip -qr "$WORK/synth.zip" annotations images)
"$BIN/distillery" datasets upload "$WORK/synth.zip" --name synth-cpu --wait --timeout 600
"$BIN/distillery" teachers upload "$TEACHER" --arch retinanet_resnet18_fpn --fpn-channels 128 \
  --name study-teacher --wait --timeout 600

# The study's cpu-scale student spec (bench.study.plan), scored on val, evaluated every epoch
# so that the pruner has intermediate values.
cat >"$WORK/spec.yaml" <<YAML
kind: distill
name: sweep reference (default HKD)
data: {dataset_id: 1, image_size: 128, batch_size: 8, val_split: val, augment: {hflip: true}}
teacher: {teacher_id: 1, arch: retinanet_resnet18_fpn, fpn_channels: 128}
student: {arch: retinanet_mobilenet_v2_fpn, fpn_channels: 64}
schedule: {epochs: 4, lr: 0.002, eval_every: 1, warmup_steps: 20}
seed: 0
YAML
cat >"$WORK/space.yaml" <<YAML
space:
  distill.lambda_kd: {type: float, low: 0.1, high: 10.0, log: true}
  distill.levels.p2.spatial: {type: float, low: 0.0, high: 2.0}
  distill.levels.p3.spatial: {type: float, low: 0.0, high: 2.0}
  distill.levels.p2.context: {type: float, low: 0.0, high: 1.0}
  distill.temperature: {type: categorical, choices: [1.0, 2.0, 4.0]}
  schedule.lr: {type: float, low: 0.001, high: 0.004, log: true}
method: tpe
objective: AP_small
pruner: {kind: median, startup_trials: 2, warmup_epochs: 2}
seed: 0
YAML
started=$(date +%s)
"$BIN/distillery" submit "$WORK/spec.yaml" >/dev/null
"$BIN/distillery" sweep "$WORK/spec.yaml" --space "$WORK/space.yaml" --trials "$TRIALS" \
  --parallel "$PARALLEL" --name "cpu-scale sweep"
api() { curl -sf -H "Authorization: Bearer $DISTILLERY_TOKEN" "$DISTILLERY_SERVER/api/v1/$1"; }
field() { "$BIN/python" -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
while :; do
  state=$(api sweeps/1 | field state)
  reference=$(api jobs/1 | field state)
  case $state in finished|failed|canceled)
    case $reference in succeeded|failed|canceled) break ;; esac ;;
  esac
  sleep 20
done
elapsed=$(( $(date +%s) - started ))
"$BIN/distillery" sweep show 1
echo
"$BIN/distillery" jobs --search "sweep reference"
echo "wall time: $(awk "BEGIN {printf \"%.2f\", $elapsed / 3600}") h for the reference job and $TRIALS trials, $PARALLEL at once ($(nproc --all) cores)"
