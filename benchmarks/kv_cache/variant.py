"""variant.py SRC DST KEY=JSONVALUE...: a copy of SRC (model files symlinked) with search options of
genai_config.json changed, e.g. past_present_share_buffer=false."""
import json
import os
import sys

src, dst = os.path.abspath(sys.argv[1]), sys.argv[2]
os.makedirs(dst, exist_ok=True)
for f in os.listdir(src):
    if f != "genai_config.json" and not os.path.exists(os.path.join(dst, f)):
        os.symlink(os.path.join(src, f), os.path.join(dst, f))
cfg = json.load(open(os.path.join(src, "genai_config.json")))
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1)
    cfg["search"][k] = json.loads(v)
json.dump(cfg, open(os.path.join(dst, "genai_config.json"), "w"), indent=4)
