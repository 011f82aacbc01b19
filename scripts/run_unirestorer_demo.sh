#!/usr/bin/env bash
# UniRestorer CPU demonstration: every stage by its own command, in order (README, "UniRestorer training").
# Finished stages are skipped / resumed when the script is run again. One thread: OMP_NUM_THREADS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
D=options/train/UniRestorer/demo
python basicsr/train.py -opt $D/encoder.yml
python scripts/cluster_degradations.py -opt $D/encoder.yml \
    --weights experiments/UniRestorer_demo_encoder/models/net_g_latest.pth --levels 1 3 6 \
    --out experiments/UniRestorer_demo_tree
python basicsr/train.py -opt $D/experts.yml
python basicsr/train.py -opt $D/router.yml
python scripts/eval_unirestorer_tree.py -opt options/test/UniRestorer/demo_eval.yml
