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
# On the GPU machine (bench/gpu) the float64 SVDs run on the GPU: on 2 CPUs they take ~2 minutes,
# most of that stage's time. Anything that fails there is redone on the CPU, the reference's device.
device = "cuda" if torch.cuda.is_available() and os.environ.get("F64_CHECK_DEVICE", "") != "cpu" else "cpu"
load = lambda p: {k: v.double().to(device) for k, v in st.load(p)[0].items()}


def exact_results():
    pre, a, b = load(f"{data}/base.safetensors"), load(f"{data}/task_0.safetensors"), load(f"{data}/task_1.safetensors")
    linear = {k for k, v in pre.items() if v.dim() == 2 and k.endswith(".weight") and "embed" not in k}
    # cmerge implements the rank-aware rule (docs/methods.md#opcm): singular values at most
    # sigma_max * max(m, n) * 2**-23 count as zero and their diagonal terms are not removed. On this
    # data every tensor's smallest noise singular values fall below that cut, so the plain rule (the
    # peer's) differs from it by ~1e-3; both float64 results are reported.
    return (M.opcm(pre, [a, b], linear, alpha=0.5, rank_aware=True)[0][1],
            M.opcm(pre, [a, b], linear, alpha=0.5)[0][1])


try:
    exact_ra, exact_plain = exact_results()
except Exception as e:  # noqa: BLE001 - any failure on the GPU: the CPU result is the one that counts
    if device == "cpu":
        raise
    print(f"float64 check on {device} failed ({type(e).__name__}: {e}); again on the CPU", file=sys.stderr)
    device = "cpu"
    exact_ra, exact_plain = exact_results()


def worst(path, exact):
    out = load(path)
    w, name, amax = 0.0, "", 0.0
    for k, e in exact.items():
        r = float((out[k] - e).norm() / e.norm())
        amax = max(amax, float((out[k] - e).abs().max()))
        if r > w:
            w, name = r, k
    return w, name, amax


text = ""
for label, exact in (("rank_aware=True (cmerge's rule)", exact_ra), ("rank_aware=False (the peer's rule)", exact_plain)):
    (wo, no, ao), (wp, np_, ap) = worst(ours_p, exact), worst(peer_p, exact)
    text += (f"- float64 check, {label} (`/usr/bin/python3 bench/opcm_f64_check.py ...`, the reference's methods.opcm in float64): "
             f"largest per-tensor relative distance to exact arithmetic: cmerge **{wo:.2e}** ({no}), peer **{wp:.2e}** ({np_}); "
             f"largest absolute difference of one element: cmerge **{ao:.2e}**, peer **{ap:.2e}**\n")
text += f"- (float64 check: {time.time() - t0:.0f} s on the {'GPU' if device == 'cuda' else 'CPU'})\n"
print(text, end="")
