#!/usr/bin/env bash
# One prepared check on one GPU: the LLaVA-1.5-7B-shaped training step per scheme (time, tokens/s, MFU, peak memory
# against llava.train.plan), the fused AsymLoRA layer in bf16, decode tokens/s (eager and compiled), the card's
# command under DeepSpeed ZeRO-2/3 with a resume, and `pytest -m cuda`. Writes OUT/gpu_report.md and
# OUT/gpu_report.json (and each part's log). DeepSpeed is not in the GPU image: carry its wheel with --wheels.
#
#   bash bench/gpu/validate.sh OUT                  # on a GPU machine, about 10 minutes on one H100/H200
#   bash bench/gpu/validate.sh --cpu-smoke OUT      # the same code paths at toy shapes on CPU (what CI runs)
#   bash bench/gpu/validate.sh --wheels DIR OUT     # first put DIR/*.whl ahead of the machine's packages
#   bash bench/gpu/validate.sh --parts train,decode OUT   # only these parts (train, layer, decode, deepspeed, tests)
#
# Runs from a plain checkout with the machine's own torch and transformers (PYTHONPATH=. is set here; PYTHON picks
# the interpreter, default .venv/bin/python if present, else python3). Each part runs in its own process under its
# own time cap, so one slow or failing part costs only itself; the report says which parts did not finish.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SMOKE=0 WHEELS= OUT= PARTS=train,layer,decode,deepspeed,tests
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-smoke) SMOKE=1 ;;
        --wheels) WHEELS=${2:?--wheels needs a folder}; shift ;;
        --parts) PARTS=${2:?--parts needs a list, e.g. train,decode}; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "validate.sh: unknown option $1 (--cpu-smoke, --wheels DIR, OUT)" >&2; exit 2 ;;
        *) [ -z "$OUT" ] || { echo "validate.sh: one output folder, got '$OUT' and '$1'" >&2; exit 2; }; OUT=$1 ;;
    esac
    shift
done
[ -n "$OUT" ] || { echo "validate.sh: name an output folder: bash bench/gpu/validate.sh [--cpu-smoke] OUT" >&2; exit 2; }
for part in ${PARTS//,/ }; do
    case "$part" in train|layer|decode|deepspeed|tests) ;;
        *) echo "validate.sh: unknown part '$part' (train, layer, decode, deepspeed, tests)" >&2; exit 2 ;; esac
done
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$ROOT:$ROOT/bench:$ROOT/bench/gpu${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1

if [ -n "$WHEELS" ]; then
    SITE=$(mktemp -d "${TMPDIR:-/tmp}/llava-gpu-site.XXXX")
    if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl \
        && PYTHONPATH="$SITE:$PYTHONPATH" "$PYTHON" -c "import transformers, datasets" 2>"$OUT/wheels.log"; then
        export PYTHONPATH="$SITE:$PYTHONPATH"
        echo "validate.sh: using the wheels in $WHEELS"
    else
        echo "validate.sh: the wheels in $WHEELS did not install or import (see $OUT/wheels.log); using the machine's packages"
    fi
fi

if [ "$SMOKE" = 1 ]; then
    MODE=cpu-smoke PART_ARGS=(--smoke) CAPS=(120 60 90 120 150)
    export CUDA_VISIBLE_DEVICES= DS_ACCELERATOR=cpu
    # DeepSpeed's CPU ops, built once by `make test` (else they compile here, about a minute)
    export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$ROOT/.torch_extensions}
else
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || {
        echo "validate.sh: no CUDA device visible to $PYTHON; on a machine without a GPU run: bash bench/gpu/validate.sh --cpu-smoke $OUT" >&2
        exit 2; }
    MODE=gpu PART_ARGS=() CAPS=(160 50 140 80 140)
fi
# each part's time cap in seconds; CAP_TRAIN=... etc. override
CAP_TRAIN=${CAP_TRAIN:-${CAPS[0]}} CAP_LAYER=${CAP_LAYER:-${CAPS[1]}} CAP_DECODE=${CAP_DECODE:-${CAPS[2]}} CAP_TESTS=${CAP_TESTS:-${CAPS[3]}}
CAP_DEEPSPEED=${CAP_DEEPSPEED:-${CAPS[4]}}
rm -f "$OUT"/part_*.json "$OUT"/status_*.json
"$PYTHON" -c "import json, common; v = common.versions(); v['mode'] = '$MODE'; print(json.dumps(v)); \
json.dump(v, open('$OUT/versions.json', 'w'))" || { echo "validate.sh: $PYTHON cannot import torch/transformers" >&2; exit 2; }

# run_part NAME CAP_SECONDS COMMAND...: the command's output in OUT/NAME.log, its exit status and time in status_NAME.json
run_part() {
    local name=$1 cap=$2 start rc
    shift 2
    case ",$PARTS," in *",$name,"*) ;; *) return 0 ;; esac
    echo "== $name (at most ${cap} s)"
    start=$(date +%s)
    timeout --kill-after=15 "$cap" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    tail -n 3 "$OUT/$name.log" | cut -c1-300
    printf '{"part": "%s", "rc": %d, "wall_s": %d, "cap_s": %d}\n' "$name" "$rc" "$(( $(date +%s) - start ))" "$cap" \
        >"$OUT/status_$name.json"
}

run_part train "$CAP_TRAIN" "$PYTHON" bench/gpu/train_step.py --out "$OUT" --budget $((CAP_TRAIN - 40)) "${PART_ARGS[@]}"
run_part layer "$CAP_LAYER" "$PYTHON" bench/gpu/layer.py --out "$OUT" "${PART_ARGS[@]}"
run_part decode "$CAP_DECODE" "$PYTHON" bench/gpu/decode.py --out "$OUT" --budget $((CAP_DECODE - 35)) "${PART_ARGS[@]}"
run_part deepspeed "$CAP_DEEPSPEED" "$PYTHON" bench/gpu/deepspeed_card.py --out "$OUT" "${PART_ARGS[@]}"
# only the files that hold cuda tests: the others may import extras (DeepSpeed, the serve extra) a GPU image lacks
mapfile -t CUDA_FILES < <(grep -l "pytest.mark.cuda" tests/test_*.py)
run_part tests "$CAP_TESTS" "$PYTHON" -m pytest -m cuda -q -rs -p no:cacheprovider --junitxml="$OUT/part_tests.xml" \
    "${CUDA_FILES[@]}"
"$PYTHON" bench/gpu/report.py "$OUT"
