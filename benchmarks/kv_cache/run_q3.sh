#!/bin/bash
# Q1 on the project's own demo-int4 + Q3 config-only: Foundry Local and onnxruntime_genai 0.14.1,
# variants alternating, medians.
cd /tmp/kv
venv/bin/python scripts/runbench.py --routes foundry --folders q3demo:1@/tmp/kv/fdeploy/cache,q3chunk:1@/tmp/kv/fdeploy/cache,q3prune:1@/tmp/kv/fdeploy/cache,q3prunechunk:1@/tmp/kv/fdeploy/cache --lengths 512,1024 --rounds 3 --out results/q3-foundry.json > results/q3-foundry.log 2>&1
venv/bin/python scripts/runbench.py --routes og14 --folders demo-int4,builds/q3-cfg-chunk128,builds/q3-demo-prune,builds/q3-demo-prune-chunk128 --lengths 512,1024 --rounds 3 --out results/q3-og14.json > results/q3-og14.log 2>&1
echo DONE >> results/q3-og14.log
