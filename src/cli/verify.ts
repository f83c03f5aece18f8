import type { Command } from 'commander';
import { existsSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { listVersions, readCurrent, sha256File, verifyVersion } from '../publish/index.js';
import type { StateRef, Version } from '../store/index.js';
import { pipelineNames, printJson, withInspection, type Inspection } from './inspect-common.js';

/**
 * One finding. Problems make `verify` exit 1. Notes are states the daemon passes through on its
 * own (a version renamed into place but not yet recorded, retention mid-way): reported, not
 * failures, so running verify next to a busy daemon does not cry wolf.
 */
export interface Finding {
  pipeline: string | null;
  version: number | null;
  kind:
    'manifest' | 'missing' | 'size' | 'hash' | 'extra' | 'unreadable' | 'current' | 'unrecorded' | 'state' | 'database';
  /** file inside the version, or the state file; null for the whole thing */
  file: string | null;
  /** absolute path of the version folder, state file or database */
  path: string;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  problems: Finding[];
  notes: Finding[];
  checked: { pipelines: number; versions: number; files: number; states: number };
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description(
      're-hash every live version against its manifest, check `current`, the merge states and the database; exit 1 on any problem',
    )
    .requiredOption('--config <file>', "the daemon's YAML config")
    .option('--json', 'print {ok, problems, notes, checked} on stdout')
    .action(async (o: { config: string; json?: boolean }) => {
      const report = await withInspection(o.config, verifyAll);
      if (o.json) printJson(report);
      else printText(report);
      if (!report.ok) process.exitCode = 1;
    });
}

export async function verifyAll(i: Inspection): Promise<VerifyReport> {
  const r: VerifyReport = {
    ok: true,
    problems: [],
    notes: [],
    checked: { pipelines: 0, versions: 0, files: 0, states: 0 },
  };
  for (const name of pipelineNames(i)) {
    r.checked.pipelines++;
    await verifyVersions(i, name, r);
    await verifyState(i, name, r);
  }
  for (const message of i.store.integrityCheck()) {
    r.problems.push({
      pipeline: null,
      version: null,
      kind: 'database',
      file: null,
      path: i.config.db_path,
      message: `SQLite: ${message}`,
    });
  }
  r.ok = r.problems.length === 0;
  return r;
}

async function verifyVersions(i: Inspection, name: string, r: VerifyReport): Promise<void> {
  const { store } = i;
  const all = store.versions(name, { includeRemoved: true });
  const live = all.filter((v) => !v.removed_at);
  // An unconfigured pipeline (removed from the config) is still checked where it was published.
  const repo =
    i.config.pipelines.find((p) => p.name === name)?.repository ??
    (all.length ? dirname(dirname(all.at(-1)!.path)) : null);
  const at = (v: Version | number, f: Omit<Finding, 'pipeline' | 'version'>) => ({
    pipeline: name,
    version: typeof v === 'number' ? v : v.number,
    ...f,
  });

  for (const v of live) {
    r.checked.versions++;
    r.checked.files += Object.keys(v.files).length;
    const found: Finding[] = existsSync(v.path)
      ? (await verifyVersion(v.path)).map((p) =>
          at(v, { kind: p.kind, file: p.file, path: v.path, message: p.message }),
        )
      : [at(v, { kind: 'missing', file: null, path: v.path, message: `version folder ${v.path} is missing` })];
    // The manifest itself: files can match a rewritten manifest, so compare it with the publication record.
    const manifest = join(v.path, 'manifest.json');
    if (existsSync(manifest)) {
      const sha = await sha256File(manifest);
      if (sha !== v.manifest_sha256) {
        found.push(
          at(v, {
            kind: 'manifest',
            file: 'manifest.json',
            path: v.path,
            message: `manifest.json: sha256 ${sha}, recorded at publication ${v.manifest_sha256}`,
          }),
        );
      }
    }
    if (!found.length) continue;
    // Retention may have removed it while we hashed (the daemon deletes, then records).
    const now = store.version(name, v.number);
    if (now?.removed_at)
      r.notes.push(
        at(v, { kind: 'missing', file: null, path: v.path, message: `removed by retention during the check` }),
      );
    else r.problems.push(...found);
  }
  if (repo === null) return;

  // Numbered folders on disk that the database does not know.
  const recorded = new Set(all.map((v) => v.number));
  const newestRecorded = all.at(-1)?.number ?? 0;
  const unrecorded = new Map<number, boolean>();
  for (const n of await listVersions(repo, name)) {
    const dir = join(repo, name, String(n));
    const v = all.find((x) => x.number === n);
    if (v?.removed_at) {
      r.notes.push(
        at(n, {
          kind: 'extra',
          file: null,
          path: dir,
          message: `recorded as removed at ${v.removed_at} but still on disk`,
        }),
      );
    }
    if (recorded.has(n)) continue;
    const intact = (await verifyVersion(dir)).length === 0;
    unrecorded.set(n, intact);
    // Newer and intact: renamed into place, the SQLite record follows (or is adopted at the next start).
    if (intact && n > newestRecorded) {
      r.notes.push(
        at(n, {
          kind: 'unrecorded',
          file: null,
          path: dir,
          message: `intact but not recorded yet (publication in progress, or adopted at the next daemon start)`,
        }),
      );
    } else {
      r.problems.push(
        at(n, {
          kind: 'unrecorded',
          file: null,
          path: dir,
          message: intact
            ? 'a version folder the database does not know'
            : 'a version folder the database does not know, and it does not verify',
        }),
      );
    }
  }

  const c = await checkCurrent(i, name, repo, unrecorded);
  if (c) (c.note ? r.notes : r.problems).push(c.finding);
}

/**
 * `current` must name the newest live version (or a newer one renamed into place and not yet
 * recorded). The daemon records a version, then swaps `current`: a lag seen once may be that
 * instant, so a mismatch counts only if it is still there after a few short waits.
 */
async function checkCurrent(
  i: Inspection,
  name: string,
  repo: string,
  unrecorded: ReadonlyMap<number, boolean>,
): Promise<{ finding: Finding; note: boolean } | null> {
  const link = join(repo, name, 'current');
  for (let attempt = 0; ; attempt++) {
    const newest = i.store.versions(name).at(-1)?.number ?? null;
    const linkExists = (() => {
      try {
        lstatSync(link);
        return true;
      } catch {
        return false;
      }
    })();
    const cur = await readCurrent(repo, name);
    const where = { pipeline: name, version: cur, kind: 'current' as const, file: null, path: link };
    if (cur === newest && !(linkExists && cur === null)) return null;
    if (cur !== null && unrecorded.get(cur) === true && cur > (newest ?? 0)) {
      return {
        note: true,
        finding: { ...where, message: `current -> ${cur}, not recorded yet; newest recorded is ${newest ?? 'none'}` },
      };
    }
    if (attempt < CURRENT_RETRIES) {
      await new Promise((res) => setTimeout(res, CURRENT_RETRY_MS));
      continue;
    }
    if (linkExists && cur === null) {
      return {
        note: false,
        finding: {
          ...where,
          message: `current is not a symlink to a version number${newest === null ? '' : ` (expected -> ${newest})`}`,
        },
      };
    }
    return {
      note: false,
      finding: {
        ...where,
        message: `current -> ${cur ?? 'nothing'}, but the newest recorded live version is ${newest ?? 'none'}`,
      },
    };
  }
}

const CURRENT_RETRIES = 3;
const CURRENT_RETRY_MS = 500;

async function verifyState(i: Inspection, name: string, r: VerifyReport): Promise<void> {
  let ref = i.store.currentStateGeneration(name);
  if (!ref) return; // nothing committed: the next merge starts from the base
  r.checked.states++;
  let found = await checkState(i, name, ref);
  // The daemon may commit a newer generation (and drop the old one) while we hash: check that one.
  const again = i.store.currentStateGeneration(name);
  if (found.length && again && again.generation !== ref.generation) {
    ref = again;
    found = await checkState(i, name, ref);
  }
  r.problems.push(...found);
  if (!found.length && !ref.sha256) {
    r.notes.push({
      pipeline: name,
      version: null,
      kind: 'state',
      file: null,
      path: ref.path,
      message: `generation ${ref.generation}: no sha256 recorded, only its presence was checked`,
    });
  }
}

async function checkState(i: Inspection, name: string, ref: StateRef): Promise<Finding[]> {
  const dir = isAbsolute(ref.path) ? ref.path : resolve(i.config.state_dir, ref.path);
  // The daemon records the generation folder; a path to the file itself is accepted too.
  const isFile = dir.endsWith('.safetensors');
  const file = isFile ? dir : join(dir, 'state.safetensors');
  const problem = (path: string, message: string): Finding => ({
    pipeline: name,
    version: null,
    kind: 'state',
    file: path,
    path,
    message: `merge state generation ${ref.generation}: ${message}`,
  });
  if (!existsSync(file) || !statSync(file).isFile()) return [problem(file, `${file} is missing`)];
  const out: Finding[] = [];
  if (ref.sha256) {
    const sha = await sha256File(file);
    if (sha !== ref.sha256) out.push(problem(file, `${file}: sha256 ${sha}, recorded at commit ${ref.sha256}`));
  }
  if (!isFile) {
    const metaPath = join(dir, 'state.json');
    try {
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { step?: unknown };
      if (typeof meta.step === 'number' && meta.step !== ref.step)
        out.push(problem(metaPath, `${metaPath} says step ${meta.step}, the database ${ref.step}`));
    } catch (e) {
      out.push(
        problem(
          metaPath,
          `${metaPath}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (e as Error).message}`,
        ),
      );
    }
  }
  return out;
}

function printText(r: VerifyReport): void {
  const label = (f: Finding) => `${f.pipeline ?? 'database'}${f.version === null ? '' : ` v${f.version}`}`;
  for (const f of r.problems)
    process.stdout.write(
      `problem  ${label(f)}: ${f.message}${f.kind !== 'state' && f.kind !== 'database' ? `  [${f.path}]` : ''}\n`,
    );
  for (const f of r.notes) process.stdout.write(`note     ${label(f)}: ${f.message}\n`);
  const c = r.checked;
  process.stdout.write(
    `${r.ok ? 'ok' : 'FAILED'}: ${c.pipelines} pipelines, ${c.versions} versions (${c.files} files re-hashed), ${c.states} merge states, database integrity; ${r.problems.length} problems, ${r.notes.length} notes\n`,
  );
}
