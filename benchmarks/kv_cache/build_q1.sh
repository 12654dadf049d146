#!/bin/bash
# Q1: INT4 RTN (block 32, asym like the project, accuracy level 4) with the onnxruntime-genai 0.14.1 builder
# (the project's venv, what Olive's ModelBuilder pass calls), with and without prune_lm_head.
set -e
PY=/work/main/.venv/bin/python
for v in base prune; do
  extra="int4_block_size=32 int4_is_symmetric=false int4_accuracy_level=4"
  [ $v = prune ] && extra="$extra prune_lm_head=true"
  $PY -m onnxruntime_genai.models.builder -i /tmp/kv/source -o /tmp/kv/builds/q1-$v -p int4 -e cpu \
     -c /tmp/kv/builds/cache --extra_options $extra > /tmp/kv/builds/q1-$v.log 2>&1
done
