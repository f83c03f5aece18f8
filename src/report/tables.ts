/** The report's tables: versions, checkpoints, rejections, notifications, the operations log. */
import type { ReportData, ReportVersion } from '../store/index.js';
import { badges, esc, Html, shortSha, table, when, type Badge } from './html.js';

const LINEAGE_TEXT = { rolled_back: 'rolled back', reverted: 'reverted', superseded: 'superseded' } as const;

/** current / pinned / removed by retention / off the lineage (rolled back, reverted) */
function versionMarkers(v: ReportVersion): Html {
  const labels: Badge[] = [];
  if (v.current) labels.push({ text: 'current', kind: 'current' });
  if (v.pinned) labels.push({ text: 'pinned', kind: 'pinned' });
  if (v.removed_at)
    labels.push({ text: 'removed', kind: 'removed', title: `removed by retention ${when(v.removed_at)}` });
  if (v.lineage !== 'current') labels.push({ text: LINEAGE_TEXT[v.lineage], kind: v.lineage });
  return badges(labels);
}

export function versionsTable(d: ReportData): string {
  return table(
    'versions',
    ['version', 'parent', 'step', 'made by', 'created', 'lineage (merge order)', 'manifest sha256', ''],
    [...d.versions]
      .reverse()
      .map((v) => [
        v.number,
        v.parent,
        v.step,
        v.kind,
        when(v.created_at),
        v.checkpoints.join(' → '),
        shortSha(v.manifest_sha256),
        versionMarkers(v),
      ]),
    'No versions published yet.',
  );
}

export function checkpointsTable(d: ReportData): string {
  return table(
    'checkpoints',
    ['#', 'name', 'arrived', 'sha256', 'status', 'step', 'reason'],
    d.checkpoints.map((c) => [
      c.id,
      c.name,
      when(c.arrived_at),
      shortSha(c.sha256),
      badges([
        { text: c.status, kind: c.status },
        ...(c.retired ? [{ text: LINEAGE_TEXT[c.retired], kind: c.retired, title: when(c.retired_at) }] : []),
      ]),
      c.step,
      c.reason,
    ]),
    'No checkpoint has arrived yet.',
  );
}

export function rejectionsTable(d: ReportData): string {
  return table(
    'rejections',
    ['name', 'arrived', 'reason', 'quarantined at'],
    d.checkpoints
      .filter((c) => c.status === 'rejected')
      .map((c) => [c.name, when(c.arrived_at), c.reason, c.quarantine_path]),
    'No checkpoint was rejected.',
  );
}

export function notificationsTable(d: ReportData): string {
  return table(
    'notifications',
    ['version', 'notifier', 'attempt', 'outcome', 'duration', 'at', 'detail'],
    d.notifications.map((n) => [
      n.version,
      n.notifier,
      n.attempt,
      badges([{ text: n.outcome, kind: n.outcome }]),
      n.duration_ms === null ? null : `${n.duration_ms} ms`,
      when(n.at),
      n.detail,
    ]),
    'No notification sent.',
  );
}

export function operationsTable(d: ReportData): string {
  return table(
    'operations',
    ['at', 'operation', 'arguments', 'via', 'outcome', 'detail'],
    d.operations.map((o) => [
      when(o.at),
      o.kind,
      new Html(`<code>${esc(JSON.stringify(o.args))}</code>`),
      o.via,
      badges([{ text: o.outcome, kind: o.outcome }]),
      o.detail,
    ]),
    'No operation recorded (rollback, revert, pin, pause...).',
  );
}
