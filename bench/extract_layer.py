"""Writes the float32 task vectors tau_1 = fl(task_0 - base) and tau_2 = fl(task_1 - base) of one
decoder layer's linear tensors (or of one named tensor) as raw little-endian float32 files, for the
per-layer timings of bench/llama7b-l2.ts and bench/llama-floor.ts (the SVD and cleaning of step 2
work on exactly these: S_1 = tau_1, then tau_2).

usage: /usr/bin/python3 bench/extract_layer.py DATA_DIR LAYER OUT_DIR  (prints name,m,n per line)
LAYER is a decoder layer's index, or the name of one tensor (e.g. lm_head.weight).
"""
import os, sys
sys.path.insert(0, os.environ.get("CMERGE_REFERENCE", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference")))
import torch, st

data, layer, out = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out, exist_ok=True)
wanted = (lambda k: k.startswith(f"model.layers.{layer}.")) if layer.isdigit() else (lambda k: k == layer)
base, t0, t1 = (st.load(f"{data}/{f}.safetensors")[0] for f in ("base", "task_0", "task_1"))
for k, v in base.items():
    if not wanted(k) or v.dim() != 2:
        continue
    for i, t in enumerate((t0, t1)):
        (t[k].float() - v.float()).contiguous().numpy().astype("<f4").tofile(f"{out}/{k}.tau{i + 1}.f32")
    print(f"{k},{v.shape[0]},{v.shape[1]}")
