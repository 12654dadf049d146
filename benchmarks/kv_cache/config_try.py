"""config_try.py FOLDER: load FOLDER with this interpreter's onnxruntime_genai, append a 1024-token
prompt, generate 8 tokens; prints ok + peak MB, or the exact error."""
import json
import sys

import onnxruntime_genai as og

folder = sys.argv[1]
try:
    model = og.Model(folder)
    tok = og.Tokenizer(model)
    ids = list(tok.encode(open("/work/main/wizard_steps/data/eval/narrative.txt").read()))[:1024]
    p = og.GeneratorParams(model)
    p.set_search_options(max_length=1024 + 8, do_sample=False)
    g = og.Generator(model, p)
    g.append_tokens(ids)
    out = []
    for _ in range(8):
        g.generate_next_token()
        out.append(int(g.get_next_tokens()[0]))
    peak = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print(json.dumps({"ok": True, "peak_mb": round(peak), "tokens": out}))
except Exception as e:
    print(json.dumps({"ok": False, "error": str(e)}))
