import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isHubId } from '../util/hub-id.js';

/** `…/models--org--name/snapshots/<revision>`: the Hugging Face cache's folder of repo org/name. */
const HF_CACHE = /(?:^|\/)models--([^/]+)\/snapshots\/[^/]+(?:\/|$)/;

/**
 * The Hub id of a model (file or folder), when it is known without the network
 * (docs/architecture.md#publication-and-hot-swap):
 * - a path in the Hugging Face cache names its repo;
 * - else a folder's config.json `_name_or_path` (what transformers loaded it from), when it is
 *   `org/name` and not a path.
 * null otherwise: a local model.
 */
export async function findHubId(path: string): Promise<string | null> {
  const cached = HF_CACHE.exec(path.replace(/\\/g, '/'));
  if (cached) {
    const id = cached[1].replace('--', '/');
    return isHubId(id) ? id : null;
  }
  try {
    if (!(await stat(path)).isDirectory()) return null;
    const config = JSON.parse(await readFile(join(path, 'config.json'), 'utf8')) as { _name_or_path?: unknown };
    const name = config._name_or_path;
    return typeof name === 'string' && isHubId(name, { namespaced: true }) ? name : null;
  } catch {
    return null; // no config.json, or one that is not JSON: nothing known
  }
}

/** The base's and each merged checkpoint's Hub id (merge order), null where none is known. */
export interface HubIds {
  base: string | null;
  checkpoints: (string | null)[];
}

/**
 * Hub ids for the model card. `baseId` (the config's `base_model_id`) wins over what the base's
 * files say. A checkpoint naming the base's id names the model it was fine-tuned from, not
 * itself (transformers keeps `_name_or_path` through save_pretrained), so it counts as unknown.
 */
export async function findHubIds(
  base: string,
  baseId: string | null | undefined,
  checkpoints: readonly (string | undefined)[],
): Promise<HubIds> {
  const baseHub = baseId ?? (await findHubId(base));
  const ids: (string | null)[] = [];
  for (const path of checkpoints) {
    const id = path === undefined ? null : await findHubId(path);
    ids.push(id !== null && id !== baseHub ? id : null);
  }
  return { base: baseHub, checkpoints: ids };
}
