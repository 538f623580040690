#!/usr/bin/env bash
# The GPU check of the vLLM rollout engine (mmrft/rollout/vllm.py), for a fresh CUDA machine that holds a copy of
# this repository and no venv; about 8 minutes:
#   1. a venv with mmrft[dev,vllm,bench] (vllm brings its own CUDA build of torch: no CPU torch pin here),
#   2. the GPU tests (pytest -m gpu),
#   3. one RL step timed (benchmarks/rl_step.py, `small` model, bf16) with rollout.engine=hf and =vllm.
#
#   bash benchmarks/gpu_check.sh
#
# Writes to $OUT when set, else benchmarks/results/gpu_check/: gpu_check.log (everything), pytest_gpu.txt,
# rl_step_hf.json and rl_step_vllm.json (rl_step.py's results), summary.txt (the two side by side).
# pip needs the network (the vllm and torch wheels are large). GPU_CHECK_EAGER=0 lets vLLM capture CUDA graphs
# (faster decoding, about a minute more start-up); the default runs it eager, like transformers' generate.
# Exit status: 0 all passed, 1 a test or a timing failed, 2 no GPU, 3 the install failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
t0=$(date +%s)
say() { echo "== +$(( $(date +%s) - t0 ))s: $*"; }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

say "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || { echo "no NVIDIA GPU visible"; exit 2; }

say "venv .venv-gpu: pip install -e .[dev,vllm,bench]"
py=.venv-gpu/bin/python
python3 -m venv .venv-gpu && $py -m pip install -q --upgrade pip \
  && timeout 420 $py -m pip install -q -e ".[dev,vllm,bench]" \
  || { echo "install failed (vllm needs PyPI and a CUDA machine)"; exit 3; }
$py -c "import torch, transformers, vllm; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
  torch.cuda.is_available(), '| transformers', transformers.__version__, '| vllm', vllm.__version__)" || exit 3

status=0
say "GPU tests"
timeout 300 $py -m pytest -m gpu -q -rs -p no:cacheprovider tests 2>&1 | tee "$out/pytest_gpu.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

# rl_step.py is a CPU benchmark: it hides the GPU from its children (CUDA_VISIBLE_DEVICES=""). Run its main() with a
# Popen that gives the GPU back; everything else is the benchmark as it is.
bench() {  # name, then mmrft overrides
  local name=$1
  shift
  say "rl_step --size small, $name"
  timeout 240 $py - "$out/rl_step_$name.json" "$@" <<'EOF'
import os, subprocess, sys, types

sys.path.insert(0, "benchmarks")
import rl_step

VISIBLE = os.environ.get("CUDA_VISIBLE_DEVICES")


class GPUPopen(subprocess.Popen):
    def __init__(self, *args, env=None, **kwargs):
        env = dict(os.environ if env is None else env)
        env.pop("CUDA_VISIBLE_DEVICES", None)
        if VISIBLE is not None:
            env["CUDA_VISIBLE_DEVICES"] = VISIBLE
        super().__init__(*args, env=env, **kwargs)


rl_step.subprocess = types.SimpleNamespace(**{**vars(subprocess), "Popen": GPUPopen})
args = ["--size", "small", "--frameworks", "mmrft", "--rounds", "1", "--warmup", "1", "--steps", "3",
        "--out", sys.argv[1], "--mmrft-set", "model.dtype=bfloat16"]
for item in sys.argv[2:]:
    args += ["--mmrft-set", item]
sys.exit(rl_step.main(args))
EOF
  [ $? = 0 ] || status=1
}
bench hf
eager=()
[ "${GPU_CHECK_EAGER:-1}" = 1 ] && eager=(rollout.vllm_kwargs.enforce_eager=true)
bench vllm rollout.engine=vllm ${eager[@]+"${eager[@]}"}

say "summary"
$py - "$out" <<'EOF' | tee "$out/summary.txt"
import json, sys
from pathlib import Path

print(f"{'engine':8} {'s/step':>8} {'rollout s':>10} {'update s':>9} {'gen tok/s':>10} {'startup s':>10} {'reward':>7}")
for name in ("hf", "vllm"):
    path = Path(sys.argv[1]) / f"rl_step_{name}.json"
    if not path.is_file():
        print(f"{name:8} (no result)")
        continue
    s = json.loads(path.read_text())["frameworks"]["mmrft"]["summary"]
    f = lambda x, spec=".2f": "-" if x is None else format(x, spec)
    print(f"{name:8} {f(s['step_s']['median']):>8} {f(s['time_split_s']['rollout']):>10} "
          f"{f(s['time_split_s']['update']):>9} {f(s['gen_tokens_per_s'], '.0f'):>10} {f(s['startup_s'], '.1f'):>10} "
          f"{f(s['reward_mean_measured'], '.3f'):>7}")
EOF
say "done (status $status)"
exit $status
