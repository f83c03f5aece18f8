"""Writes the float32 task vectors tau_1 = fl(task_0 - base) and tau_2 = fl(task_1 - base) of one
decoder layer's linear tensors (or of one named tensor) as raw little-endian float32 files, for the
per-layer timings of bench/llama7b-l2.ts and bench/llama-floor.ts (the SVD and cleaning of step 2
work on exactly these: S_1 = tau_1, then tau_2).

usage: /usr/bin/python3 bench/extract_layer.py DATA_DIR OUT_DIR WHAT...
(prints "index name,m,n" per tensor: index of the WHAT it belongs to). Each WHAT is a decoder
layer's index or the name of one tensor (e.g. lm_head.weight); the three models are read once for all.
"""
import os, sys
sys.path.insert(0, os.environ.get("CMERGE_REFERENCE", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference")))
import torch, st

data, out, whats = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(out, exist_ok=True)
matches = lambda what, k: k.startswith(f"model.layers.{what}.") if what.isdigit() else k == what
base, t0, t1 = (st.load(f"{data}/{f}.safetensors")[0] for f in ("base", "task_0", "task_1"))
for index, what in enumerate(whats):
    for k, v in base.items():
        if not matches(what, k) or v.dim() != 2:
            continue
        for i, t in enumerate((t0, t1)):
            (t[k].float() - v.float()).contiguous().numpy().astype("<f4").tofile(f"{out}/{k}.tau{i + 1}.f32")
        print(f"{index} {k},{v.shape[0]},{v.shape[1]}")
