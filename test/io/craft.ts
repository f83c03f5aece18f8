/** Hand-made safetensors files for tests: any header text, any data, any length prefix. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';

export interface CraftOptions {
  /** length prefix to write instead of the real header length */
  lengthPrefix?: number | bigint;
  /** pad the header with spaces to a multiple of 8 (default true) */
  pad?: boolean;
}

/** Bytes of a safetensors file with `header` (object or raw JSON text) and `data`. */
export function craftBytes(header: unknown, data: Uint8Array = new Uint8Array(0), opts: CraftOptions = {}): Buffer {
  let json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  if (opts.pad ?? true) json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(opts.lengthPrefix ?? json.length));
  return Buffer.concat([prefix, json, data]);
}

let n = 0;
const dir = tempDir('cmerge-io-craft-');

/** Writes crafted bytes to a fresh temp file and returns its path. */
export function craftFile(bytes: Uint8Array, name = `f${++n}.safetensors`): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** A valid one-tensor header entry. */
export function entry(dtype: string, shape: number[], begin: number, end: number): object {
  return { dtype, shape, data_offsets: [begin, end] };
}
