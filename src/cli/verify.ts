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
    .action(async (opts: { config: string; json?: boolean }) => {
      const report = await withInspection(opts.config, verifyAll);
      if (opts.json) printJson(report);
      else printText(report);
      if (!report.ok) process.exitCode = 1;
    });
}

export async function verifyAll(inspection: Inspection): Promise<VerifyReport> {
  const report: VerifyReport = {
    ok: true,
    problems: [],
    notes: [],
    checked: { pipelines: 0, versions: 0, files: 0, states: 0 },
  };
  for (const name of pipelineNames(inspection)) {
    report.checked.pipelines++;
    await verifyVersions(inspection, name, report);
    await verifyState(inspection, name, report);
  }
  for (const message of inspection.store.integrityCheck()) {
    report.problems.push({
      pipeline: null,
      version: null,
      kind: 'database',
      file: null,
      path: inspection.config.db_path,
      message: `SQLite: ${message}`,
    });
  }
  report.ok = report.problems.length === 0;
  return report;
}

/** One pipeline's versions being checked: where findings go, and how they are labelled. */
interface VersionCheck {
  inspection: Inspection;
  name: string;
  report: VerifyReport;
  /** every recorded version, removed ones too, oldest first */
  all: Version[];
  /** a finding about version `v` of this pipeline */
  at: (v: Version | number, f: Omit<Finding, 'pipeline' | 'version'>) => Finding;
}

async function verifyVersions(inspection: Inspection, name: string, report: VerifyReport): Promise<void> {
  const all = inspection.store.versions(name, { includeRemoved: true });
  // An unconfigured pipeline (removed from the config) is still checked where it was published.
  const repo =
    inspection.config.pipelines.find((p) => p.name === name)?.repository ??
    (all.length ? dirname(dirname(all.at(-1)!.path)) : null);
  const at = (v: Version | number, f: Omit<Finding, 'pipeline' | 'version'>): Finding => ({
    pipeline: name,
    version: typeof v === 'number' ? v : v.number,
    ...f,
  });
  const check: VersionCheck = { inspection, name, report, all, at };

  for (const version of all.filter((v) => !v.removed_at)) await verifyLiveVersion(check, version);
  if (repo === null) return;
  const unrecorded = await checkUnrecordedFolders(check, repo);
  const current = await checkCurrent(inspection, name, repo, unrecorded);
  if (current) (current.note ? report.notes : report.problems).push(current.finding);
}

/** Re-hashes one live version's files and its manifest against the publication record. */
async function verifyLiveVersion({ inspection, name, report, at }: VersionCheck, version: Version): Promise<void> {
  report.checked.versions++;
  report.checked.files += Object.keys(version.files).length;
  const found: Finding[] = existsSync(version.path)
    ? (await verifyVersion(version.path)).map((p) =>
        at(version, { kind: p.kind, file: p.file, path: version.path, message: p.message }),
      )
    : [
        at(version, {
          kind: 'missing',
          file: null,
          path: version.path,
          message: `version folder ${version.path} is missing`,
        }),
      ];
  // The manifest itself: files can match a rewritten manifest, so compare it with the publication record.
  const manifest = join(version.path, 'manifest.json');
  if (existsSync(manifest)) {
    const sha = await sha256File(manifest);
    if (sha !== version.manifest_sha256) {
      found.push(
        at(version, {
          kind: 'manifest',
          file: 'manifest.json',
          path: version.path,
          message: `manifest.json: sha256 ${sha}, recorded at publication ${version.manifest_sha256}`,
        }),
      );
    }
  }
  if (!found.length) return;
  // Retention may have removed it while we hashed (the daemon deletes, then records).
  const now = inspection.store.version(name, version.number);
  if (now?.removed_at)
    report.notes.push(
      at(version, {
        kind: 'missing',
        file: null,
        path: version.path,
        message: `removed by retention during the check`,
      }),
    );
  else report.problems.push(...found);
}

/**
 * Numbered folders on disk that the database does not know (and removed ones still there).
 * Returns the unrecorded version numbers, each with whether its folder verifies.
 */
async function checkUnrecordedFolders(
  { name, report, all, at }: VersionCheck,
  repo: string,
): Promise<Map<number, boolean>> {
  const recorded = new Set(all.map((v) => v.number));
  const newestRecorded = all.at(-1)?.number ?? 0;
  const unrecorded = new Map<number, boolean>();
  for (const number of await listVersions(repo, name)) {
    const dir = join(repo, name, String(number));
    const version = all.find((v) => v.number === number);
    if (version?.removed_at) {
      report.notes.push(
        at(number, {
          kind: 'extra',
          file: null,
          path: dir,
          message: `recorded as removed at ${version.removed_at} but still on disk`,
        }),
      );
    }
    if (recorded.has(number)) continue;
    const intact = (await verifyVersion(dir)).length === 0;
    unrecorded.set(number, intact);
    // Newer and intact: renamed into place, the SQLite record follows (or is adopted at the next start).
    if (intact && number > newestRecorded) {
      report.notes.push(
        at(number, {
          kind: 'unrecorded',
          file: null,
          path: dir,
          message: `intact but not recorded yet (publication in progress, or adopted at the next daemon start)`,
        }),
      );
    } else {
      report.problems.push(
        at(number, {
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
  return unrecorded;
}

/**
 * `current` must name the newest live version (or a newer one renamed into place and not yet
 * recorded). The daemon records a version, then swaps `current`: a lag seen once may be that
 * instant, so a mismatch counts only if it is still there after a few short waits.
 */
async function checkCurrent(
  inspection: Inspection,
  name: string,
  repo: string,
  unrecorded: ReadonlyMap<number, boolean>,
): Promise<{ finding: Finding; note: boolean } | null> {
  const link = join(repo, name, 'current');
  for (let attempt = 0; ; attempt++) {
    const newest = inspection.store.versions(name).at(-1)?.number ?? null;
    const linkExists = (() => {
      try {
        lstatSync(link);
        return true;
      } catch {
        return false;
      }
    })();
    const target = await readCurrent(repo, name);
    const where = { pipeline: name, version: target, kind: 'current' as const, file: null, path: link };
    if (target === newest && !(linkExists && target === null)) return null;
    if (target !== null && unrecorded.get(target) === true && target > (newest ?? 0)) {
      return {
        note: true,
        finding: {
          ...where,
          message: `current -> ${target}, not recorded yet; newest recorded is ${newest ?? 'none'}`,
        },
      };
    }
    if (attempt < CURRENT_RETRIES) {
      await new Promise((res) => setTimeout(res, CURRENT_RETRY_MS));
      continue;
    }
    if (linkExists && target === null) {
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
        message: `current -> ${target ?? 'nothing'}, but the newest recorded live version is ${newest ?? 'none'}`,
      },
    };
  }
}

const CURRENT_RETRIES = 3;
const CURRENT_RETRY_MS = 500;

async function verifyState(inspection: Inspection, name: string, report: VerifyReport): Promise<void> {
  let ref = inspection.store.currentStateGeneration(name);
  if (!ref) return; // nothing committed: the next merge starts from the base
  report.checked.states++;
  let found = await checkState(inspection, name, ref);
  // The daemon may commit a newer generation (and drop the old one) while we hash: check that one.
  const again = inspection.store.currentStateGeneration(name);
  if (found.length && again && again.generation !== ref.generation) {
    ref = again;
    found = await checkState(inspection, name, ref);
  }
  report.problems.push(...found);
  if (!found.length && !ref.sha256) {
    report.notes.push({
      pipeline: name,
      version: null,
      kind: 'state',
      file: null,
      path: ref.path,
      message: `generation ${ref.generation}: no sha256 recorded, only its presence was checked`,
    });
  }
}

async function checkState(inspection: Inspection, name: string, ref: StateRef): Promise<Finding[]> {
  const dir = isAbsolute(ref.path) ? ref.path : resolve(inspection.config.state_dir, ref.path);
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

function printText(report: VerifyReport): void {
  const label = (f: Finding) => `${f.pipeline ?? 'database'}${f.version === null ? '' : ` v${f.version}`}`;
  for (const f of report.problems)
    process.stdout.write(
      `problem  ${label(f)}: ${f.message}${f.kind !== 'state' && f.kind !== 'database' ? `  [${f.path}]` : ''}\n`,
    );
  for (const f of report.notes) process.stdout.write(`note     ${label(f)}: ${f.message}\n`);
  const checked = report.checked;
  process.stdout.write(
    `${report.ok ? 'ok' : 'FAILED'}: ${checked.pipelines} pipelines, ${checked.versions} versions (${checked.files} files re-hashed), ${checked.states} merge states, database integrity; ${report.problems.length} problems, ${report.notes.length} notes\n`,
  );
}
