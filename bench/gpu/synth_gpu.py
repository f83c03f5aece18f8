"""synth.py's checkpoints, made on the GPU: the same shapes, names, dtypes and kind of data
(base ~ N(0, 0.02²); each task adds, per 2-D tensor, a rank-32 product A·B with A ~ N(0, 0.002²),
B ~ N(0, 1), plus N(0, 1e-4²) dense noise; other tensors get N(0, 1e-3²)), drawn with a CUDA
generator so that a TinyLlama- or Llama-7B-sized set takes seconds instead of minutes on the CPU.
The numbers differ from synth.py's (another random stream); the figures measured on them do not
depend on the draw.

usage: python3 synth_gpu.py OUTDIR SHAPE NTASKS DTYPE(F32|BF16) [SEED]
SHAPE: vitb32 | vitb32-l2 | llama1b | llama7b-l2 | llama7b-lN (Llama-2-7B shapes with N decoder layers)
Needs the shared reference's st.py: CMERGE_REFERENCE=<dir> (default: ../../.gpu/reference, then
../../../shared/reference).
"""
import os, sys, time

here = os.path.dirname(os.path.abspath(__file__))
for d in (os.environ.get("CMERGE_REFERENCE"), os.path.join(here, "..", "..", ".gpu", "reference"), os.path.join(here, "..", "..", "..", "shared", "reference")):
    if d and os.path.exists(os.path.join(d, "st.py")):
        sys.path.insert(0, d)
        break
import torch, st  # noqa: E402

out, shape, n, dt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
dev = os.environ.get("SYNTH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
g = torch.Generator(device=dev).manual_seed(seed)
tdt = {"F32": torch.float32, "BF16": torch.bfloat16}[dt]


def shapes():
    s = {}
    if shape in ("vitb32", "vitb32-l2"):
        D, F, L = 768, 3072, (12 if shape == "vitb32" else 2)
        s["vision_model.embeddings.class_embedding"] = (D,)
        s["vision_model.embeddings.patch_embedding.weight"] = (D, 3, 32, 32)
        s["vision_model.embeddings.position_embedding.weight"] = (50, D)
        s["vision_model.pre_layrnorm.weight"] = (D,); s["vision_model.pre_layrnorm.bias"] = (D,)
        for i in range(L):
            p = f"vision_model.encoder.layers.{i}."
            for nm in ["q_proj", "k_proj", "v_proj", "out_proj"]:
                s[p + f"self_attn.{nm}.weight"] = (D, D); s[p + f"self_attn.{nm}.bias"] = (D,)
            for nm in ["layer_norm1", "layer_norm2"]:
                s[p + f"{nm}.weight"] = (D,); s[p + f"{nm}.bias"] = (D,)
            s[p + "mlp.fc1.weight"] = (F, D); s[p + "mlp.fc1.bias"] = (F,)
            s[p + "mlp.fc2.weight"] = (D, F); s[p + "mlp.fc2.bias"] = (D,)
        s["vision_model.post_layernorm.weight"] = (D,); s["vision_model.post_layernorm.bias"] = (D,)
        s["visual_projection.weight"] = (512, D)
    elif shape == "llama1b" or shape.startswith("llama7b-l"):
        if shape == "llama1b":
            D, F, L, V, KV = 2048, 5632, 22, 32000, 256
        else:
            D, F, L, V, KV = 4096, 11008, int(shape[len("llama7b-l"):]), 32000, 4096
        s["model.embed_tokens.weight"] = (V, D)
        for i in range(L):
            p = f"model.layers.{i}."
            s[p + "self_attn.q_proj.weight"] = (D, D); s[p + "self_attn.k_proj.weight"] = (KV, D)
            s[p + "self_attn.v_proj.weight"] = (KV, D); s[p + "self_attn.o_proj.weight"] = (D, D)
            s[p + "mlp.gate_proj.weight"] = (F, D); s[p + "mlp.up_proj.weight"] = (F, D); s[p + "mlp.down_proj.weight"] = (D, F)
            s[p + "input_layernorm.weight"] = (D,); s[p + "post_attention_layernorm.weight"] = (D,)
        s["model.norm.weight"] = (D,)
        s["lm_head.weight"] = (V, D)
    else:
        raise SystemExit(f"unknown shape {shape}")
    return s


t0 = time.time()
S = shapes()
os.makedirs(out, exist_ok=True)
base_dev = {k: (torch.randn(*sh, generator=g, device=dev) * 0.02).to(tdt) for k, sh in S.items()}
st.save({k: v.cpu() for k, v in base_dev.items()}, f"{out}/base.safetensors", {"format": "pt"})
for t in range(n):
    task = {}
    for k, sh in S.items():
        if len(sh) == 2:
            m, nn_ = sh
            a = torch.randn(m, 32, generator=g, device=dev) * 0.002
            b = torch.randn(32, nn_, generator=g, device=dev)
            d = a @ b + torch.randn(m, nn_, generator=g, device=dev) * 1e-4
        else:
            d = torch.randn(*sh, generator=g, device=dev) * 1e-3
        task[k] = (base_dev[k].float() + d).to(tdt).cpu()
    st.save(task, f"{out}/task_{t}.safetensors", {"format": "pt"})
    del task
print(out, sum(torch.Size(sh).numel() for sh in S.values()), "params", f"on {dev} in {time.time() - t0:.1f} s")
