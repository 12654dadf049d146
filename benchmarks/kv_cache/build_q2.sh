#!/bin/bash
# Q2: builds with the onnxruntime-genai 0.18.0 builder (/tmp/kv/venv): fp32 reference, INT4 RTN
# (block 32, accuracy level 4, the builder's defaults otherwise), KV scales calibrated on that INT4
# build, then INT4 + quantized KV caches.
set -e
PY=/tmp/kv/venv/bin/python
B="$PY -m onnxruntime_genai.models.builder -i /tmp/kv/source -e cpu -c /tmp/kv/builds/cache"
I4="block_size=32 accuracy_level=4"
cd /tmp/kv/builds
[ -f q2-fp32/model.onnx ] || $B -o q2-fp32 -p fp32 > q2-fp32.log 2>&1
[ -f q2-int4/model.onnx ] || $B -o q2-int4 -p int4 --extra_options $I4 > q2-int4.log 2>&1
[ -f kv_scales.json ] || $PY -m onnxruntime_genai.models.quantization.kv_cache_calibration \
    --model q2-int4 --tokenizer /tmp/kv/source --out kv_scales.json --quant-type int8_per_channel > calib.log 2>&1
for s in int8_per_channel int8_per_tensor int4_per_channel; do
  [ -f q2-int4-kv-$s/model.onnx ] || $B -o q2-int4-kv-$s -p int4 --extra_options $I4 \
      kv_cache_quant_scheme=$s kv_cache_scale_file=/tmp/kv/builds/kv_scales.json > q2-int4-kv-$s.log 2>&1 \
      || echo "BUILD FAILED $s"
done
