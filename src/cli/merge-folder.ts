import { basename, relative, resolve } from 'node:path';
import { checkpointSha256 } from '../daemon/checkpoint-hash.js';
import { mergeMetrics } from '../daemon/metrics.js';
import type { MergeReport, StateMeta } from '../merge/runner.js';
import {
  beginModelFolder,
  discardModelFolder,
  finishModelFolder,
  type FinishInput,
  type ModelFolderStaging,
} from '../publish/index.js';

/** `--out DIR`: where the runner writes the weights, and how the folder is completed or dropped. */
export interface FolderOutput {
  /** the staging folder the runner writes into */
  dir: string;
  /** completes the folder and renames it to DIR; the runner calls it before the state's CURRENT moves */
  finish(report: MergeReport, meta: StateMeta): Promise<void>;
  /** a failed run leaves nothing */
  discard(): Promise<void>;
  /** the report with the weights' paths in DIR instead of the staging folder */
  relocate(report: MergeReport): MergeReport;
}

export interface FolderSource {
  base: string;
  state: string;
  baseModelId?: string;
}

/**
 * `cmerge merge --out DIR` writes what a daemon version holds (README.md, "cmerge merge"): the
 * weights, the base folder's config and tokenizer files, the model card and manifest.json, so a
 * server or `from_pretrained` loads it. Its manifest's version is the state's step (checkpoints
 * merged so far), its parent the step the call continued from (null from the base), its pipeline
 * the state folder's name. null for a `.safetensors` output: the weights alone.
 */
export async function folderOutput(out: string, source: FolderSource): Promise<FolderOutput | null> {
  if (out.endsWith('.safetensors')) return null;
  const staging = await beginModelFolder(out);
  const pipeline = basename(resolve(source.state));
  return {
    dir: staging.dir,
    finish: async (report, meta) => {
      await finishModelFolder(
        staging,
        { pipeline, version: meta.step },
        await finishInput(staging, source, report, meta),
      );
    },
    discard: () => discardModelFolder(staging),
    relocate: (report) => relocate(staging, report),
  };
}

/** What the manifest and the model card say, from the run's report and the new state's lineage. */
async function finishInput(
  staging: ModelFolderStaging,
  source: FolderSource,
  report: MergeReport,
  meta: StateMeta,
): Promise<FinishInput> {
  return {
    parent: report.from_step > 0 ? report.from_step : null,
    method: report.method,
    params: report.params,
    base: { path: resolve(source.base), sha256: await checkpointSha256(source.base) },
    baseModelId: source.baseModelId,
    checkpoints: meta.checkpoints.map((c) => ({
      name: c.name,
      sha256: c.sha256 ?? '',
      merged_at: c.merged_at ?? '',
      ...(c.dtype ? { dtype: c.dtype } : {}),
      path: c.path,
    })),
    engine: report.engine,
    metrics: mergeMetrics(report, report.steps[report.steps.length - 1]).model,
    knownSha256: Object.fromEntries(Object.entries(report.out_sha256).map(([p, h]) => [relative(staging.dir, p), h])),
  };
}

function relocate(staging: ModelFolderStaging, report: MergeReport): MergeReport {
  const moved = (p: string) => resolve(staging.dest, relative(staging.dir, p));
  return {
    ...report,
    out_files: report.out_files.map(moved),
    out_sha256: Object.fromEntries(Object.entries(report.out_sha256).map(([p, h]) => [moved(p), h])),
  };
}
