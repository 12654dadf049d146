#!/bin/bash
# Q2 speed/memory, side by side (variants alternate within each round, 3 rounds, medians).
cd /tmp/kv
venv/bin/python scripts/runbench.py --routes og18 --folders builds/q2-int4,builds/q2-int4-noshare,builds/q2-int4-kv-int8_per_channel,builds/q2-int4-kv8-share,builds/q2-int4-kv-int4_per_channel --lengths 16,128,512,1024 --rounds 3 --out results/q2-og18.json > results/q2-og18.log 2>&1
venv/bin/python scripts/runbench.py --routes foundry --folders q2int4:1@/tmp/kv/fdeploy/cache,q2int4noshare:1@/tmp/kv/fdeploy/cache,q2int4kvint8perchannel:1@/tmp/kv/fdeploy/cache,q2int4kv8share:1@/tmp/kv/fdeploy/cache,q2int4kvint4perchannel:1@/tmp/kv/fdeploy/cache --lengths 16,128,512,1024 --rounds 3 --out results/q2-foundry.json > results/q2-foundry.log 2>&1
venv/bin/python scripts/quality.py builds/q2-fp32 builds/q2-int4 builds/q2-int4:step builds/q2-int4-kv-int8_per_channel builds/q2-int4-kv-int8_per_channel:step builds/q2-int4-kv-int4_per_channel:step --wpt 2 --out results/q2-quality.json > results/q2-quality.log 2>&1
echo DONE >> results/q2-quality.log
