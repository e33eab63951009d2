#!/usr/bin/env bash
# The GPU check: everything that needs a CUDA device, in under 10 minutes on one modern GPU.
#
#   bash benchmarks/gpu_check.sh                 # logs and summary.md in gpu_check_out/
#   GPU_CHECK_OUT=/tmp/g PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#
# Needs a CUDA build of torch and the atari extra (`make install-test TORCH=torch`). Each step
# has its own time limit, and the whole run GPU_CHECK_BUDGET seconds (default 570): a step gets
# at most what is left, and is skipped when under 15 s are, so the check ends within 10 minutes.
# A step that fails does not stop the others. summary.md lists every step's status and time and
# the figures the README wants (device name, steps/s, ratios). Exit status: the failed steps.
# train.py stops cleanly on the time limit's SIGINT, so a slow run still prints its steps/s.
#
# Steps, most important first (seconds at most):
#   the CUDA tests: pytest -k cuda (the test ids carry the device)                          120
#   train.py device=cuda on recall (the default job) and on Atari (RTRL eLSTM N = 256)      45+60
#   benchmarks.rollout_sync: host<->device syncs per rollout step (target: none but the
#     action transfer the host-side env needs)                                              60
#   Atari at CleanRL ppo_atari_lstm's settings (8 envs, 128-step rollouts, 4 epochs x 4
#     minibatches, frame_stack 1, episodic life, lr 2.5e-4, clip 0.1, N = 128): steps/s
#     against its ~525 on one GPU; RTRL eLSTM and TBPTT LSTM                                60+60
#   with 2 GPUs or more: a 2-GPU torchrun job and benchmarks.scaling on recall              60+120
#   benchmarks.rules --device cuda                                                          90
#   recall at N = 256, RTRL and TBPTT: the learner's cost per step, target RTRL <= 1.2x     40+40
#   issue 17: benchmarks.against the commit before it, the default job compiled, and
#     benchmarks.floor (rtrl-elstm and tbptt-lstm at B 16, 256, 1024)                       90+60+90
#   benchmarks.kf_floor and benchmarks.atari with --device cuda                             45+75
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
OUT="${GPU_CHECK_OUT:-gpu_check_out}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.md"
BUDGET="${GPU_CHECK_BUDGET:-570}"
FAILED=0
START=$SECONDS

# step NAME SECONDS CMD...: run CMD under a time limit, log to $OUT/NAME.log, record the status.
step() {
  local name="$1" limit="$2"
  shift 2
  local t0=$SECONDS rc left=$((BUDGET - (SECONDS - START)))
  echo "== $name: $*" | tee "$OUT/$name.log"
  if [ "$left" -lt 15 ]; then
    echo "| $name | skipped: out of time | |" >>"$SUMMARY.steps"
    echo "   skipped: out of time"
    return
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  timeout --signal=INT --kill-after=20 "$limit" "$@" >>"$OUT/$name.log" 2>&1
  rc=$?
  local status="ok"
  if [ "$rc" -ne 0 ]; then
    status="FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ", over ${limit}s"))"
    FAILED=$((FAILED + 1))
  fi
  echo "| $name | $status | $((SECONDS - t0)) s |" >>"$SUMMARY.steps"
  echo "   $status in $((SECONDS - t0)) s"
  tail -n 3 "$OUT/$name.log" | sed 's/^/   /'
}

# steps/s from train.py's summary line ("..., 1234 steps/s ...; run in ...")
sps() { grep -Eo '[0-9]+ steps/s' "$OUT/$1.log" | tail -1 | cut -d' ' -f1; }
ratio() { "$PY" -c "import sys; a, b = map(float, sys.argv[1:]); print(f'{a / b:.2f}')" "$1" "$2" 2>/dev/null || echo "?"; }

: >"$SUMMARY.steps"
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
DEVICE=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))" 2>/dev/null || echo "none")
echo "GPUs: $GPUS ($DEVICE)"
if [ "$GPUS" -lt 1 ]; then
  echo "no CUDA device visible to torch: nothing to check" >&2
  exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/nvidia-smi.csv" 2>&1 || true

TRAIN=("$PY" train.py device=cuda progress=false "log_dir=$OUT/runs")

# the CUDA tests
step cuda_tests 120 "$PY" -m pytest -q -m "not slow" -k cuda tests

# train.py on the GPU: recall (the default job), Atari (Breakout, Nature CNN -> RTRL eLSTM N = 256)
step train_recall 45 "${TRAIN[@]}" total_steps=20000
step train_atari 60 "${TRAIN[@]}" env=atari core.hidden_size=256 algo.fused_optimizer=true total_steps=6144

# host<->device syncs in the rollout loop
step rollout_sync 60 "$PY" -m benchmarks.rollout_sync --device cuda

# CleanRL ppo_atari_lstm's settings (its agent: Nature CNN -> 512 -> LSTM 128, BPTT over 128 steps)
CLEANRL=(env=atari env.game=breakout env.frame_stack=1 env.episodic_life=true num_envs=8
  algo.rollout_len=128 algo.num_epochs=4 algo.num_minibatches=4 algo.lr=2.5e-4 algo.clip_coef=0.1
  algo.ent_coef=0.01 algo.fused_optimizer=true core.hidden_size=128 total_steps=16384)
step cleanrl_rtrl_elstm 60 "${TRAIN[@]}" "${CLEANRL[@]}" algo=rtrl
step cleanrl_tbptt_lstm 60 "${TRAIN[@]}" "${CLEANRL[@]}" algo=tbptt core=lstm

# two GPUs: one run over both (nccl), and the scaling table
if [ "$GPUS" -ge 2 ]; then
  step torchrun_2gpu 60 "$PY" -m torch.distributed.run --standalone --nproc_per_node=2 train.py \
    device=cuda progress=false "log_dir=$OUT/runs" total_steps=20000 num_envs=32
  step bench_scaling 120 "$PY" -m benchmarks.scaling --device cuda --tasks recall atari --ks 1 2 --updates 10
fi

# the rules on the GPU; then the whole learner at N = 256, RTRL against TBPTT (collect + update)
step bench_rules 90 "$PY" -m benchmarks.rules --device cuda --repeats 5 --uoro-max 64
step recall_rtrl_n256 40 "${TRAIN[@]}" total_steps=12000 core.hidden_size=256 algo=rtrl
step recall_tbptt_n256 40 "${TRAIN[@]}" total_steps=12000 core.hidden_size=256 algo=tbptt

# issue 17's targets on the GPU: (a) the default job against the commit before the issue (needs
# the git history; skipped where the tree came without it), and with algo.compile; (c) the floor
if git rev-parse -q --verify 2c7d01c >/dev/null 2>&1; then
  step against_2c7d01c 90 "$PY" -m benchmarks.against 2c7d01c --device cuda --rounds 3 --iterations 100
fi
step recall_compile 60 "${TRAIN[@]}" total_steps=30000 algo.compile=true
step bench_floor 90 "$PY" -m benchmarks.floor --device cuda --agents rtrl-elstm tbptt-lstm --envs 16 256 1024

step bench_kf_floor 45 "$PY" -m benchmarks.kf_floor --device cuda --repeats 11
step bench_atari 75 "$PY" -m benchmarks.atari --device cuda --quick

# summary.md: the figures, then every step's status
{
  echo "# GPU check: $DEVICE ($GPUS GPU(s)), $(date -u +%Y-%m-%d)"
  echo
  "$PY" -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}')" 2>/dev/null
  echo
  echo "| figure | value | target |"
  echo "|---|---|---|"
  echo "| recall default job, steps/s | $(sps train_recall) | |"
  echo "| recall N=256 steps/s, RTRL / TBPTT | $(sps recall_rtrl_n256) / $(sps recall_tbptt_n256) | |"
  echo "| RTRL cost per step x TBPTT, N=256 | $(ratio "$(sps recall_tbptt_n256)" "$(sps recall_rtrl_n256)") | <= 1.2 |"
  echo "| recall default job with algo.compile=true, steps/s (compile included) | $(sps recall_compile) | |"
  echo "| default job x the commit before issue 17 | $(grep -Eo '^×2c7d01c: [0-9.]+' "$OUT/against_2c7d01c.log" 2>/dev/null | grep -Eo '[0-9.]+$') | >= 2.5 |"
  echo "| rtrl-elstm at B=256, % of the compute floor | $(grep -E '^rtrl-elstm +256 ' "$OUT/bench_floor.log" | grep -Eo '[0-9]+%$') | >= 25% |"
  echo "| Atari (16 envs, N=256) steps/s | $(sps train_atari) | |"
  echo "| Atari at CleanRL's settings, RTRL eLSTM steps/s | $(sps cleanrl_rtrl_elstm) | >= 525 |"
  echo "| Atari at CleanRL's settings, TBPTT LSTM steps/s | $(sps cleanrl_tbptt_lstm) | >= 525 |"
  echo "| avoidable syncs in the rollout loop | $(grep -Eo 'avoidable syncs in the rollout loop: [0-9]+' "$OUT/rollout_sync.log" | grep -Eo '[0-9]+$') | 0 |"
  if [ "$GPUS" -ge 2 ]; then
    echo "| 2-GPU torchrun recall steps/s | $(sps torchrun_2gpu) | |"
  fi
  echo
  echo "train.py steps/s include start-up (the first update's allocations and autotuning)."
  echo "Tables: bench_rules.log, bench_kf_floor.log, bench_atari.log, rollout_sync.log$([ "$GPUS" -ge 2 ] && echo ", bench_scaling.log")."
  echo
  echo "| step | status | time |"
  echo "|---|---|---|"
  cat "$SUMMARY.steps"
  echo
  echo "total $((SECONDS - START)) s, $FAILED failed"
} >"$SUMMARY"
rm -f "$SUMMARY.steps"
cat "$SUMMARY"
exit "$FAILED"
