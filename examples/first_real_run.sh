#!/usr/bin/env bash
# The first real run: train on real group photos, convert to every quantization mode, compare them,
# and count faces with the int8 model.
#
# Usage: examples/first_real_run.sh DATA_DIR [RUN_DIR]
#   DATA_DIR  labels.csv + images/ (like ../shared/data/av-faces), or the challenge's download
#             (train.csv + image_data/ [+ bbox_train.csv])
#   RUN_DIR   where the run is written (default runs/av)
# Set WEIGHTS to a MobileNetV2 no-top .h5 file when this machine cannot download Keras' weights.
set -euo pipefail

data_dir=${1:?usage: examples/first_real_run.sh DATA_DIR [RUN_DIR]}
run_dir=${2:-runs/av}
weights=${WEIGHTS:-imagenet}

edgecount train --data "$data_dir" --alpha 0.35 --weights "$weights" --out "$run_dir"
edgecount convert "$run_dir" --quantize all
edgecount compare "$run_dir" --out "$run_dir/report"
image_dir="$data_dir/images"
[ -d "$image_dir" ] || image_dir="$data_dir/image_data"
edgecount count "$run_dir/model_int8.tflite" "$image_dir" --csv > "$run_dir/counts.csv"
echo "counts written to $run_dir/counts.csv; report in $run_dir/report/"
