"""Which of two OPCM step-2 outputs is closer to exact arithmetic?

usage: /usr/bin/python3 bench/opcm_f64_check.py DATA_DIR CMERGE_OUT PEER_OUT
(bench/vs-peer.ts opcm runs it and adds its line to the result.)
Runs the reference's own methods.opcm (shared/reference) on base, task_0, task_1 in float64 and
prints, per output, the largest per-tensor relative Frobenius distance to that result. Used to
explain why cmerge and the peer (float32 full SVD) differ by ~1e-3 on synthetic ViT-B/32 data:
the noise part of these task vectors has nearly equal singular values, whose float32 singular
vectors are ill-conditioned.
"""
import os, sys, time
sys.path.insert(0, os.environ.get("CMERGE_REFERENCE", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference")))
import torch, st, methods as M

data, ours_p, peer_p = sys.argv[1:4]
t0 = time.time()
load = lambda p: {k: v.double() for k, v in st.load(p)[0].items()}
pre, a, b = load(f"{data}/base.safetensors"), load(f"{data}/task_0.safetensors"), load(f"{data}/task_1.safetensors")
linear = {k for k, v in pre.items() if v.dim() == 2 and k.endswith(".weight") and "embed" not in k}
exact = M.opcm(pre, [a, b], linear, alpha=0.5)[0][1]
del a, b


def worst(path):
    out = load(path)
    w, name, amax = 0.0, "", 0.0
    for k, e in exact.items():
        r = float((out[k] - e).norm() / e.norm())
        amax = max(amax, float((out[k] - e).abs().max()))
        if r > w:
            w, name = r, k
    return w, name, amax


(wo, no, ao), (wp, np_, ap) = worst(ours_p), worst(peer_p)
text = (f"- float64 check (`/usr/bin/python3 bench/opcm_f64_check.py ...`, the reference's methods.opcm in float64, {time.time() - t0:.0f} s): "
        f"largest per-tensor relative distance to exact arithmetic: cmerge **{wo:.2e}** ({no}), peer **{wp:.2e}** ({np_}); "
        f"largest absolute difference of one element: cmerge **{ao:.2e}**, peer **{ap:.2e}**\n")
print(text, end="")
