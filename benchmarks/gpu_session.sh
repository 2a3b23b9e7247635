#!/usr/bin/env bash
# The GPU checks and benchmarks, prepared to run in one call of the `device` tool (a bare
# machine whose python3 holds CUDA torch; nothing can be fetched there). Here, first:
#     bash benchmarks/gpu_wheels.sh          # sparsify's missing wheels into .whl/
# then, through the tool, from the repository root, with carry [".whl"]:
#     bash benchmarks/gpu_session.sh tests train
#     bash benchmarks/gpu_session.sh scaling         # a second call if time is left
# Not yet run on a GPU (none was lent up to 2026-12-07), so how long each part takes is not
# known: give the first call a timeout that leaves device time for a second; the logs come
# back even when it is cut off.
# Parts: tests (the CUDA tests: test_cuda.py and the selection's CUDA parameters), train
# (train_speed.py --device cuda: ours, and sparsify when its wheels came), scaling
# (scaling_speed.py --device cuda). Results and logs go to $OUT (benchmarks/results/gpu
# without it). The package runs from src/ on the machine's own torch.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-benchmarks/results/gpu}"
mkdir -p "$out"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
  2>/dev/null || { echo "gpu_session.sh: python3 here has no torch that sees a GPU" >&2; exit 2; }
nvidia-smi -L
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
peers=ours
python3 -c "import sparsify" 2>/dev/null && peers=ours,sparsify
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(tests train)
status=0
for p in "${parts[@]}"; do
  case "$p" in
    tests)
      { python3 -m pytest -p no:cacheprovider -rs tests/test_cuda.py &&
        python3 -m pytest -p no:cacheprovider -rs tests/kernels/test_selection.py -k cuda
      } 2>&1 | tee "$out/gpu_tests.log" || status=1 ;;
    train)
      python3 benchmarks/train_speed.py --device cuda --only "$peers" \
        --peer-python "$(command -v python3)" --out "$out/train_speed_cuda.json" 2>&1 \
        | tee "$out/train_speed_cuda.log" || status=1 ;;
    scaling)
      python3 benchmarks/scaling_speed.py --device cuda \
        $([ "$peers" = ours ] && echo --skip-peers) --peer-python "$(command -v python3)" \
        --out "$out/scaling_speed_cuda.json" 2>&1 | tee "$out/scaling_speed_cuda.log" \
        || status=1 ;;
    *) echo "gpu_session.sh: part '$p': expected tests, train or scaling" >&2; exit 2 ;;
  esac
done
exit $status
