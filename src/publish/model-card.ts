import { basename } from 'node:path';
import { stringify } from 'yaml';
import type { HubIds } from './hub-ids.js';
import type { Manifest, ManifestCheckpoint } from './manifest.js';

export interface ModelCardOptions {
  /** Hub ids of the base and the checkpoints (see findHubIds); default: none known. */
  hubIds?: HubIds;
  /** Default 'transformers' when the version has a config.json, none otherwise. */
  libraryName?: string;
  tags?: string[];
  /** Free text placed under the title. */
  description?: string;
}

/**
 * A Hugging Face style model card. With `base_model_relation: merge` the Hub reads `base_model`
 * as the models that were merged, each a Hub repo id: it lists the known Hub ids of the base and
 * the checkpoints, never a local path. Local models are named in the text only
 * (docs/architecture.md#publication-and-hot-swap).
 */
export function renderModelCard(
  m: Omit<Manifest, 'files' | 'file_sizes'>,
  files: string[],
  opts: ModelCardOptions = {},
): string {
  const library = opts.libraryName ?? (files.includes('config.json') ? 'transformers' : undefined);
  const hub = opts.hubIds ?? { base: null, checkpoints: [] };
  const hubIds = [...new Set([hub.base, ...hub.checkpoints].filter((id): id is string => id !== null))];
  const front: Record<string, unknown> = {
    ...(hubIds.length ? { base_model: hubIds } : {}),
    base_model_relation: 'merge',
    ...(library ? { library_name: library } : {}),
    tags: [...new Set(['merge', 'cmerge', m.method, ...(opts.tags ?? [])])],
  };
  const lines: string[] = [
    '---',
    stringify(front).trimEnd(),
    '---',
    '',
    `# ${m.pipeline} v${m.version}`,
    '',
    ...(opts.description ? [opts.description, ''] : []),
    `Continual merge made by cmerge ${m.cmerge_version} (engine: ${m.engine}) on ${m.created_at}.`,
    `Parent version: ${m.parent ?? 'none'}.`,
    '',
    '## Method',
    '',
    `\`${m.method}\` with parameters:`,
    '',
    '```json',
    JSON.stringify(m.params, null, 2),
    '```',
    '',
    ...modelsSection(m, hub),
    ...adapterSection(m.checkpoints),
    '## Metrics',
    '',
    ...(Object.keys(m.metrics).length
      ? ['```json', JSON.stringify(m.metrics, null, 2), '```']
      : ['No metrics were recorded for this version.']),
    '',
    'File hashes are in `manifest.json`.',
    '',
  ];
  return lines.join('\n');
}

/** The base and the merged checkpoints, with their Hub ids where known and their local names otherwise. */
function modelsSection(m: Omit<Manifest, 'files' | 'file_sizes'>, hub: HubIds): string[] {
  const local = hub.base === null || m.checkpoints.some((_, i) => !hub.checkpoints[i]);
  return [
    '## Base model',
    '',
    `- \`${m.base.path}\` (sha256 \`${m.base.sha256}\`)${hub.base ? `, Hub id \`${hub.base}\`` : ', a local model'}`,
    '',
    `## Merged checkpoints (${m.checkpoints.length}, in merge order)`,
    '',
    '| # | checkpoint | sha256 | merged at | Hub id |',
    '|---|---|---|---|---|',
    ...m.checkpoints.map(
      (c, i) =>
        `| ${i + 1} | ${cell(basename(c.name))} | \`${c.sha256}\` | ${c.merged_at} | ${hub.checkpoints[i] ? `\`${hub.checkpoints[i]}\`` : '-'} |`,
    ),
    '',
    ...(local ? ['Models without a Hub id are local: `base_model` above lists Hub repositories only.', ''] : []),
  ];
}

/**
 * The merged checkpoints that were PEFT LoRA adapters (docs/lora.md): rank, alpha, what they
 * target, their files' hashes. Nothing when none was.
 */
function adapterSection(checkpoints: readonly ManifestCheckpoint[]): string[] {
  const rows = checkpoints.flatMap((c, i) => {
    const a = c.adapter;
    if (!a) return [];
    const modules = Array.isArray(a.target_modules) ? a.target_modules.join(', ') : (a.target_modules ?? '-');
    const saved = a.modules_to_save.length ? a.modules_to_save.join(', ') : '-';
    return [
      `| ${i + 1} | ${cell(basename(c.name))} | ${a.r} | ${a.alpha}${a.use_rslora ? ' (rsLoRA)' : ''} | ` +
        `${cell(modules)} | ${cell(saved)} | ${a.target_tensors} | \`${a.config_sha256}\` | \`${a.weights_sha256}\` |`,
    ];
  });
  if (!rows.length) return [];
  return [
    `## LoRA adapters (${rows.length})`,
    '',
    'These checkpoints were PEFT LoRA adapters: each was merged as θ0 + scaling · B A on the base.',
    '',
    '| # | adapter | r | alpha | target modules | modules to save | base tensors | adapter_config.json sha256 | adapter_model.safetensors sha256 |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
  ];
}

/** Keep a table cell on one line and its pipes literal. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');
}
