#!/usr/bin/env bash
# Build the whole book on a GPU with the full profile, and print what it cost:
#
#   bash scripts/gpu_book.sh                      # data: $CVAE_DATA, else Debian's Fashion-MNIST
#   CVAE_DATA=~/data/mnist bash scripts/gpu_book.sh
#   bash scripts/gpu_book.sh --subset 1000 500    # a quick check of the same path
#
# 1. Creates .venv with the CUDA-enabled TensorFlow (the gpu extra) and the book's
#    packages at constraints.txt's versions (made on Python 3.11), unless .venv exists.
# 2. Prints the devices TensorFlow sees, and stops if it sees no GPU (a CPU build of
#    the full profile takes over half an hour on two cores: benchmarks/full_book.py).
# 3. Runs benchmarks/full_book.py: the book built with CVAE_PROFILE=full on the MNIST-format
#    files of CVAE_DATA, with every chapter executed; prints the table of wall time and
#    peak memory per chapter and writes benchmarks/results/full-book-gpu.json.
#
# The machine needs no network once .venv exists; carry the data along (four IDX files,
# about 30 MB gzipped) and point CVAE_DATA at them. The built book is in _build/html.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${CVAE_DATA:-/usr/share/datasets/fashion-mnist}
if [[ ! -x .venv/bin/python ]]; then
    echo "gpu_book: creating .venv with the gpu, book and test extras"
    python3 -m venv .venv
    .venv/bin/python -m pip install -q -e ".[gpu,book,test]" -c constraints.txt
fi

echo "gpu_book: the devices TensorFlow sees:"
.venv/bin/python - <<'EOF'
import sys

from cvae_lib.backend import GPUS, tf

for device in tf.config.list_physical_devices():
    name = tf.config.experimental.get_device_details(device).get("device_name", "") if device.device_type == "GPU" else ""
    print(f"  {device.name} ({device.device_type}) {name}".rstrip())
print(f"  TensorFlow {tf.__version__}, built with CUDA: {tf.test.is_built_with_cuda()}")
if not GPUS:
    print("gpu_book: error: TensorFlow sees no GPU (is the gpu extra installed? `nvidia-smi` works?)", file=sys.stderr)
    sys.exit(2)
EOF

exec .venv/bin/python benchmarks/full_book.py --data "$DATA" --json benchmarks/results/full-book-gpu.json "$@"
