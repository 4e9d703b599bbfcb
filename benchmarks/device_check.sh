#!/usr/bin/env bash
# The course on a lent GPU machine, as one prepared script (the learner-speed issue's GPU goals).
#
# Here, once:   make device-bundle    # .gpu-data/ (the full datasets) and .whl/site/ (pytest, tqdm:
#                                     # pure-Python packages such a machine lacks); both git-ignored
# There:        the device tool's run, with carry [".gpu-data", ".whl"] and a timeout of about 540 s:
#                 bash benchmarks/device_check.sh
# Here, to try the script itself on the CPU in a minute:  DEVICE=cpu QUICK=1 bash benchmarks/device_check.sh
#
# The parts, in this order so that a run cut short still reports the most useful ones first:
#   1. the machine: nvidia-smi and torch's view of the device
#   2. the device tests on the GPU (DMLCOURSE_TEST_DEVICE=cuda): autocast training steps with every
#      loss, miner and head, and training on the GPU against the same seed on the CPU
#   3. benchmarks/bench_train.py: seconds per epoch of full MNIST for the default CNN (goal: <= 1 s)
#   4. benchmarks/bench_quality.py: 1-NN accuracy test -> train on the full data after 60 s of training
#      of the default network and loss (goals: MNIST >= 0.995, Fashion-MNIST >= 0.94)
#   5. the unit tests that need neither plotly, ipywidgets, umap-learn nor Jupyter (the machine has none)
# Each part's output is in $OUT/NN-part.txt (and .json for the benchmarks); this prints a summary.
# Not run there: the notebooks (no Jupyter on that machine) and `make bench`'s Lab and PML parts.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-build/device-check}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/.whl/site${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu-data/mnist ]; then export DMLCOURSE_DATA_DIR="$PWD/.gpu-data"; fi
export DMLCOURSE_CACHE_DIR="$OUT/cache" MPLBACKEND=Agg

part() {  # part NAME COMMAND...: run it, keep its output, say how it ended and how long it took
    local name=$1; shift
    local t0=$SECONDS
    "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - t0)) s"
    tail -n 25 "$OUT/$name.txt"
}

part 1-machine bash -c "nvidia-smi -L 2>/dev/null; $PY -c 'import torch, sys
print(\"python\", sys.version.split()[0], \"torch\", torch.__version__)
print(\"cuda available:\", torch.cuda.is_available())
if torch.cuda.is_available(): print(\"device:\", torch.cuda.get_device_name(0))'"

DEVICE_TESTS=(tests/test_mixed_precision.py
              tests/test_train.py::test_training_on_the_test_device_follows_the_cpu)
part 2-device-tests env DMLCOURSE_TEST_DEVICE="$DEVICE" \
    $PY -m pytest -p no:cacheprovider -q "${DEVICE_TESTS[@]}"

QUICK_FLAG=(); [ "$QUICK" = 1 ] && QUICK_FLAG=(--quick)   # --quick: a few steps, 2 s of training, mini data
part 3-bench-train $PY benchmarks/bench_train.py "${QUICK_FLAG[@]}" --device "$DEVICE" \
    --json "$OUT/3-bench-train.json"
part 4-bench-quality $PY benchmarks/bench_quality.py "${QUICK_FLAG[@]}" --budget 60 --seeds 1 \
    --configs "NCA (default)" --json "$OUT/4-bench-quality.json"

# the unit tests whose modules import nothing beyond torch, numpy, scipy, scikit-learn and matplotlib
# (test_losses, test_heads, test_miners and test_metrics import pytorch-metric-learning, the explorers
# ipywidgets: neither is there)
UNIT_TESTS=(tests/core tests/test_train.py tests/test_models.py tests/test_data.py
            tests/test_uncertainty.py tests/test_verification.py tests/test_mahalanobis.py
            tests/test_autoencoders.py tests/test_supervised.py tests/test_tuples.py
            tests/test_open_set.py tests/test_metric_spaces.py tests/test_bayesian_updating.py)
[ "$QUICK" = 1 ] && UNIT_TESTS=(tests/core tests/test_uncertainty.py)
part 5-unit-tests env DMLCOURSE_TEST_DEVICE="$DEVICE" \
    $PY -m pytest -p no:cacheprovider -q -k "not explorer" "${UNIT_TESTS[@]}"

# the goals, read from the benchmarks' JSON (a missing figure says so)
$PY - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
goals = {"mnist": 0.995, "fashion-mnist": 0.94}
try:
    rows = json.loads((out / "3-bench-train.json").read_text())["rows"]
    best = min(r["s_per_epoch_full_mnist"] for r in rows)
    print(f"goal: <= 1 s per epoch of full MNIST: best {best:.2f} s ({'met' if best <= 1 else 'missed'})")
except (OSError, KeyError, ValueError) as e:
    print(f"goal: s per epoch: no figure ({e})")
try:
    rows = json.loads((out / "4-bench-quality.json").read_text())["rows"]
    for r in rows:
        goal = goals[r["dataset"]]
        print(f"goal: 1-NN >= {goal} on {r['dataset']} ({r['size']} data, {r['budget_s']:.0f} s): "
              f"{r['nn1_acc']:.4f} ({'met' if r['nn1_acc'] >= goal else 'missed'})")
except (OSError, KeyError, ValueError) as e:
    print(f"goal: 1-NN: no figure ({e})")
PY
