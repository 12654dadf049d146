"""Deploy a folder into a throw-away Foundry Local cache the way benchmarks/memory.py does
(context bounded to CONTEXT); prints MODEL_ID@CACHE. Run with /work/main/.venv/bin/python,
SLMOPS_HOME=/tmp/kv/home.   deploy.py FOLDER NAME CACHE [CONTEXT]"""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, "/work/main")
from wizard_steps.deployment.deploy import deploy, finish
from wizard_steps.deployment.deploy_files import set_context_length
from wizard_steps.prompt.generation import ModelConfig
from wizard_steps.prompt.templates import PRESETS

folder, name, cache = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
context = int(sys.argv[4]) if len(sys.argv) > 4 else 2048
staged = cache.parent / f"stage-{name}"
shutil.rmtree(staged, ignore_errors=True)
shutil.copytree(folder, staged)
set_context_length(staged, context)
done = finish(deploy(staged, name, PRESETS["chatml"].template, ModelConfig(max_length=context, temperature=0.0),
                     cache_dir=cache, tune=False))
shutil.rmtree(staged, ignore_errors=True)
print(f"{done.result.model_id}@{cache}")
