/**
 * Strict safetensors header parsing: every way a file can be malformed or incomplete becomes an
 * InputError with a short reason, before any tensor data is touched.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { InputError, type DType, type TensorInfo } from '../types.js';
import { dtypeSize, isDType } from './dtype.js';

/** The format's own limit (the HF reader uses 100 MB too). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface HeaderEntry extends TensorInfo {
  /** byte offsets relative to the start of the data section */
  begin: number;
  end: number;
}

export interface ParsedHeader {
  /** N, the JSON length in bytes */
  headerLength: number;
  /** absolute offset of the data section: 8 + N */
  dataStart: number;
  metadata: Record<string, string>;
  /** tensors sorted by data offset */
  entries: HeaderEntry[];
  /** size of the data section: the last end offset */
  dataBytes: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads the 8-byte length prefix; null when the file is shorter than 8 bytes. */
function readLength(fd: number): number | null {
  const prefix = Buffer.alloc(8);
  if (readFully(fd, prefix, 0) < 8) return null;
  const n = prefix.readBigUInt64LE(0);
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

/** Positional read until `buf` is full or EOF; returns the bytes read. */
export function readFully(fd: number, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.byteLength) {
    const n = readSync(fd, buf, done, buf.byteLength - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Reads and validates the header of an open file. */
export function readHeader(fd: number, file: string): ParsedHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8)
    throw new InputError(file, `not safetensors: file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const n = readLength(fd)!;
  if (n > MAX_HEADER_BYTES)
    throw new InputError(file, `header length ${n} exceeds the 100 MB limit (not safetensors?)`);
  if (n > fileSize - 8)
    throw new InputError(file, `header length ${n} exceeds the file size ${fileSize} (not safetensors, or truncated)`);
  const json = Buffer.allocUnsafe(n);
  readFully(fd, json, 8);
  return parseHeader(file, json, fileSize);
}

/** Validates header JSON bytes against the size of the whole file. */
export function parseHeader(file: string, json: Uint8Array, fileSize: number): ParsedHeader {
  const n = json.byteLength;
  const { metadata, entries } = parseEntries(file, json);
  checkLayout(file, entries);
  const dataBytes = entries.length ? entries[entries.length - 1]!.end : 0;
  const expected = 8 + n + dataBytes;
  if (fileSize < expected) {
    throw new InputError(
      file,
      `file is ${fileSize} bytes but its header describes ${expected}: truncated or still being written`,
    );
  }
  if (fileSize > expected) {
    throw new InputError(
      file,
      `file is ${fileSize} bytes but its header describes ${expected}: ${fileSize - expected} trailing bytes`,
    );
  }
  return { headerLength: n, dataStart: 8 + n, metadata, entries, dataBytes };
}

/** Decodes and type-checks the JSON; entries come back sorted by offset. */
export function parseEntries(
  file: string,
  json: Uint8Array,
): { metadata: Record<string, string>; entries: HeaderEntry[] } {
  let text: string;
  try {
    text = utf8.decode(json);
  } catch {
    throw new InputError(file, 'header is not valid UTF-8');
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new InputError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new InputError(file, 'header is not a JSON object');
  }
  const record = obj as Record<string, unknown>;
  const keys = Object.keys(record);
  const dup = duplicateTopLevelKey(text, keys.length);
  if (dup !== null) throw new InputError(file, `duplicate tensor name ${JSON.stringify(dup)} in header`);

  let metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const name of keys) {
    const value = record[name];
    if (name === '__metadata__') {
      metadata = checkMetadata(file, value);
      continue;
    }
    entries.push(checkEntry(file, name, value));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  return { metadata, entries };
}

function checkMetadata(file: string, value: unknown): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InputError(file, '__metadata__ is not a string-to-string map');
  }
  // a null-prototype copy: keys such as "__proto__" stay plain data
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string')
      throw new InputError(
        file,
        `__metadata__ is not a string-to-string map (value of ${JSON.stringify(k)} is ${typeof v})`,
      );
    out[k] = v;
  }
  return out;
}

function checkEntry(file: string, name: string, value: unknown): HeaderEntry {
  const bad = (why: string) => new InputError(file, `tensor ${JSON.stringify(name)}: ${why}`);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('entry is not an object');
  const e = value as Record<string, unknown>;
  if (!isDType(e.dtype)) throw bad(`unknown dtype ${JSON.stringify(e.dtype)}`);
  const dtype: DType = e.dtype;
  const shape = e.shape;
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    throw bad(`shape ${JSON.stringify(shape)} is not an array of non-negative integers`);
  }
  const offsets = e.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    throw bad(`data_offsets ${JSON.stringify(offsets)} is not [begin, end] with non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw bad(`data_offsets [${begin}, ${end}] has begin > end`);
  let size = 1;
  for (const d of shape as number[]) {
    size *= d;
    if (!Number.isSafeInteger(size)) throw bad(`shape ${JSON.stringify(shape)} has too many elements`);
  }
  const byteLength = size * dtypeSize(dtype);
  if (!Number.isSafeInteger(byteLength)) throw bad(`shape ${JSON.stringify(shape)} has too many elements`);
  if (end - begin !== byteLength) {
    throw bad(
      `byte size ${end - begin} does not match shape ${JSON.stringify(shape)} × ${dtype} (${byteLength} bytes)`,
    );
  }
  return { name, dtype, shape: shape as number[], size, byteLength, begin, end };
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Offsets sorted by begin must tile [0, last end) exactly. */
function checkLayout(file: string, entries: readonly HeaderEntry[]): void {
  let pos = 0;
  let prev: HeaderEntry | null = null;
  for (const e of entries) {
    if (e.begin > pos) {
      const after = prev ? `after ${JSON.stringify(prev.name)}` : 'at the start of the data';
      throw new InputError(
        file,
        `data offsets have a hole: ${e.begin - pos} unused bytes ${after} (before ${JSON.stringify(e.name)} at ${e.begin})`,
      );
    }
    if (e.begin < pos) {
      throw new InputError(
        file,
        `data offsets overlap: ${JSON.stringify(e.name)} starts at ${e.begin}, inside ${JSON.stringify(prev!.name)} which ends at ${pos}`,
      );
    }
    pos = e.end;
    prev = e;
  }
}

/**
 * JSON.parse keeps the last of duplicate keys silently. Count top-level keys with a small scanner
 * (the text is already known to be valid JSON) and, only on a mismatch, find the repeated name.
 */
function duplicateTopLevelKey(text: string, distinct: number): string | null {
  const keys = topLevelKeys(text);
  if (keys.length === distinct) return null;
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) return k;
    seen.add(k);
  }
  return null;
}

function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(start, i + 1)) as string);
      expectKey = false;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      expectKey = depth === 1;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2c /* , */) {
      expectKey = depth === 1;
    }
  }
  return keys;
}

export interface Completeness {
  complete: boolean;
  /** 8 + N + last end offset, or null when the prefix or header is not readable (yet) */
  expectedSize: number | null;
  actualSize: number;
  /**
   * Shorter than what it declares so far: under 8 bytes, a header length (within the 100 MB
   * limit) past the end, or data past the end. A writer may still be adding to it, so it is not
   * bad yet; false for a complete file, and for one whose readable header is invalid.
   */
  pending: boolean;
}

/**
 * Whether a (possibly still growing) file has the size its header promises. Reads only the
 * prefix and header; never throws for partial or malformed files (a missing file is size 0).
 */
export function probeComplete(path: string): Completeness {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      return { complete: false, expectedSize: null, actualSize: 0, pending: false };
    throw e;
  }
  try {
    const actualSize = fstatSync(fd).size;
    const expectedSize = expectedSizeOf(fd, path, actualSize);
    if (expectedSize === 'pending') return { complete: false, expectedSize: null, actualSize, pending: true };
    const pending = expectedSize !== null && actualSize < expectedSize;
    return { complete: expectedSize === actualSize, expectedSize, actualSize, pending };
  } finally {
    closeSync(fd);
  }
}

/** 8 + N + last end offset; 'pending' while the prefix or header is not all there; null for a bad header. */
function expectedSizeOf(fd: number, path: string, actualSize: number): number | 'pending' | null {
  const n = readLength(fd);
  if (n === null) return 'pending';
  if (n > MAX_HEADER_BYTES) return null;
  if (n > actualSize - 8) return 'pending';
  const json = Buffer.allocUnsafe(n);
  if (readFully(fd, json, 8) < n) return 'pending'; // shrank since fstat: being rewritten
  try {
    const { entries } = parseEntries(path, json);
    let last = 0;
    for (const e of entries) last = Math.max(last, e.end);
    return 8 + n + last;
  } catch (e) {
    if (e instanceof InputError) return null;
    throw e;
  }
}
