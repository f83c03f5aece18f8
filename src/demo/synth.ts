import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createModelWriter } from '../io/model.js';
import type { TensorSpec } from '../io/types.js';
import { normalRng } from './random.js';

/**
 * A small CLIP-vision-shaped model and fine-tuned checkpoints made up on the spot, for the daemon's
 * tests, which need checkpoints of a known shape in milliseconds rather than trained ones. Task
 * vectors are low rank plus a component shared by all tasks (interference, which OPCM projects
 * out) and a little noise, like real fine-tuning deltas.
 */
export function demoShapes(d = 64, layers = 2): TensorSpec[] {
  const specs: TensorSpec[] = [];
  const add = (name: string, shape: number[]) => specs.push({ name, dtype: 'F32', shape });
  add('vision_model.embeddings.class_embedding', [d]);
  add('vision_model.embeddings.patch_embedding.weight', [d, 3, 4, 4]);
  add('vision_model.embeddings.position_embedding.weight', [17, d]);
  for (let i = 0; i < layers; i++) {
    const layer = `vision_model.encoder.layers.${i}.`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      add(`${layer}self_attn.${proj}.weight`, [d, d]);
      add(`${layer}self_attn.${proj}.bias`, [d]);
    }
    for (const norm of ['layer_norm1', 'layer_norm2']) {
      add(`${layer}${norm}.weight`, [d]);
      add(`${layer}${norm}.bias`, [d]);
    }
    add(`${layer}mlp.fc1.weight`, [4 * d, d]);
    add(`${layer}mlp.fc1.bias`, [4 * d]);
    add(`${layer}mlp.fc2.weight`, [d, 4 * d]);
    add(`${layer}mlp.fc2.bias`, [d]);
  }
  add('vision_model.post_layernorm.weight', [d]);
  add('vision_model.post_layernorm.bias', [d]);
  add('visual_projection.weight', [d / 2, d]);
  return specs;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function lowRank(m: number, n: number, rank: number, scale: number, g: () => number): Float32Array {
  const a = Array.from({ length: m * rank }, g);
  const b = Array.from({ length: rank * n }, g);
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let k = 0; k < rank; k++) {
      const aik = (a[i * rank + k] * scale) / (1 + k);
      for (let j = 0; j < n; j++) out[i * n + j] += aik * b[k * n + j];
    }
  return out;
}

/** Writes base.safetensors and task_0..task_{n-1}.safetensors into `dir`; returns their paths. */
export function writeDemoModels(
  dir: string,
  tasks: number,
  opts: { d?: number; layers?: number; seed?: number } = {},
): { base: string; tasks: string[] } {
  mkdirSync(dir, { recursive: true });
  const specs = demoShapes(opts.d ?? 64, opts.layers ?? 2);
  const g = normalRng(opts.seed ?? 1);
  const base = new Map<string, Float32Array>();
  const shared = new Map<string, Float32Array>();
  for (const s of specs) {
    const n = numel(s.shape);
    const isNorm = s.name.includes('norm') && s.name.endsWith('.weight');
    base.set(
      s.name,
      Float32Array.from({ length: n }, () => (isNorm ? 1 + 0.05 * g() : g() / Math.sqrt(s.shape.at(-1)!))),
    );
    shared.set(
      s.name,
      s.shape.length === 2
        ? lowRank(s.shape[0], s.shape[1], 4, 0.01, g)
        : Float32Array.from({ length: n }, () => 0.004 * g()),
    );
  }
  const write = (path: string, values: (name: string) => Float32Array) => {
    const writer = createModelWriter(path, specs, { metadata: { format: 'pt' } });
    for (const name of writer.order) writer.write(name, values(name));
    writer.commit();
    return path;
  };
  const basePath = write(join(dir, 'base.safetensors'), (name) => base.get(name)!);
  const taskPaths: string[] = [];
  for (let t = 0; t < tasks; t++) {
    taskPaths.push(
      write(join(dir, `task_${t}.safetensors`), (name) => {
        const spec = specs.find((s) => s.name === name)!;
        const b = base.get(name)!;
        const sh = shared.get(name)!;
        const own = spec.shape.length === 2 ? lowRank(spec.shape[0], spec.shape[1], 8, 0.02, g) : null;
        return Float32Array.from(b, (v, i) => v + (own ? own[i] : 0.01 * g()) + 0.7 * sh[i] + 1e-4 * g());
      }),
    );
  }
  return { base: basePath, tasks: taskPaths };
}
