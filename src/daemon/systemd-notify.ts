import { spawnSync } from 'node:child_process';
import { loadSys } from '../engine/native.js';

/**
 * systemd's notify protocol (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1): one datagram of
 * KEY=VALUE lines to $NOTIFY_SOCKET. Node has no unix datagram sockets, so the cmerge_sys addon
 * sends it; without the addon the systemd-notify command does (it sends from its own PID, so the
 * unit then needs NotifyAccess=all; it waits for systemd to process the message, so no race).
 *
 * Returns false, doing nothing, when NOTIFY_SOCKET is unset (not run by systemd); true once sent.
 * Throws on malformed fields or when sending fails.
 */
export function sdNotify(fields: Record<string, string>): boolean {
  if (!process.env.NOTIFY_SOCKET) return false;
  const message = formatFields(fields);
  const sys = loadSys();
  if (sys.addon) return sys.addon.sdNotify(message);
  return sdNotifyCommand(fields);
}

/** The fallback transport, exported so it can be exercised where the addon is present too. */
export function sdNotifyCommand(fields: Record<string, string>): boolean {
  if (!process.env.NOTIFY_SOCKET) return false;
  formatFields(fields);
  const args = Object.entries(fields).map(([k, v]) => `${k}=${v}`);
  const r = spawnSync('systemd-notify', args, { encoding: 'utf8', timeout: 5000 });
  if (r.error) throw new Error(`systemd-notify: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`systemd-notify exited with ${r.status}: ${r.stderr.trim()}`);
  return true;
}

/** KEY=VALUE lines; a newline inside a value would smuggle in another field. */
export function formatFields(fields: Record<string, string>): string {
  const entries = Object.entries(fields);
  if (entries.length === 0) throw new Error('sdNotify: no fields');
  return entries
    .map(([k, v]) => {
      if (!/^[A-Z][A-Z0-9_]*$/.test(k)) throw new Error(`sdNotify: bad field name "${k}"`);
      if (/[\n\0]/.test(v)) throw new Error(`sdNotify: value of ${k} contains a newline or NUL`);
      return `${k}=${v}`;
    })
    .join('\n');
}
