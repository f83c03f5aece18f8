/** One crafted bad file per validation rule: each must be an InputError whose reason names the problem. */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { test } from 'node:test';
import { InputError } from '../../src/io/types.js';
import { probeComplete } from '../../src/io/safetensors/header.js';
import { SafetensorsFile } from '../../src/io/safetensors/reader.js';
import { craftBytes, craftFile, entry } from './craft.js';

function rejects(bytes: Uint8Array, reason: RegExp): void {
  const path = craftFile(bytes);
  assert.throws(
    () => SafetensorsFile.open(path),
    (e: unknown) => {
      assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
      assert.equal(e.file, path);
      assert.match(e.reason, reason);
      return true;
    },
  );
}

const f32x2 = new Uint8Array(8);

test('valid minimal file opens', () => {
  const f = SafetensorsFile.open(craftFile(craftBytes({ a: entry('F32', [2], 0, 8) }, f32x2)));
  assert.deepEqual([...f.tensors.keys()], ['a']);
  f.close();
});

test('empty header {} with no data is valid', () => {
  const f = SafetensorsFile.open(craftFile(craftBytes({})));
  assert.equal(f.tensors.size, 0);
  f.close();
});

test('file shorter than 8 bytes', () => rejects(new Uint8Array(5), /shorter than the 8-byte/));

test('header length over 100 MB', () =>
  rejects(craftBytes({}, undefined, { lengthPrefix: 100 * 1024 * 1024 + 1 }), /100 MB/));

test('header length beyond the file size', () =>
  rejects(craftBytes({}, undefined, { lengthPrefix: 4096 }), /exceeds the file size/));

test('header length near 2^64', () => rejects(craftBytes({}, undefined, { lengthPrefix: 2n ** 64n - 1n }), /100 MB/));

test('header not valid UTF-8', () => {
  const bytes = craftBytes('{"ab":1}');
  bytes[10] = 0xff; // the "a": 0xff never occurs in UTF-8
  rejects(bytes, /not valid UTF-8/);
});

test('header not valid JSON', () => rejects(craftBytes('{"a": '), /not valid JSON/));

test('header padded with NULs is not valid JSON', () =>
  rejects(craftBytes('{}\0\0\0\0\0\0', undefined, { pad: false }), /not valid JSON/));

test('header is JSON but not an object', () => rejects(craftBytes('[1,2]'), /not a JSON object/));

test('header is JSON null', () => rejects(craftBytes('null'), /not a JSON object/));

test('__metadata__ not a map', () =>
  rejects(craftBytes({ __metadata__: 'x' }), /__metadata__ is not a string-to-string map/));

test('__metadata__ with a non-string value', () =>
  rejects(craftBytes({ __metadata__: { a: 1 } }), /__metadata__ is not a string-to-string map.*"a"/));

test('entry not an object', () => rejects(craftBytes({ a: [1] }), /tensor "a": entry is not an object/));

test('unknown dtype', () =>
  rejects(craftBytes({ a: entry('F128', [1], 0, 16) }, new Uint8Array(16)), /tensor "a": unknown dtype "F128"/));

test('missing dtype', () =>
  rejects(craftBytes({ a: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /unknown dtype undefined/));

test('shape not an array', () =>
  rejects(craftBytes({ a: { dtype: 'F32', shape: 2, data_offsets: [0, 8] } }, f32x2), /shape 2 is not an array/));

test('negative shape entry', () =>
  rejects(craftBytes({ a: entry('F32', [-2], 0, 8) }, f32x2), /shape \[-2\] is not an array of non-negative integers/));

test('fractional shape entry', () => rejects(craftBytes({ a: entry('F32', [1.5], 0, 8) }, f32x2), /shape \[1.5\]/));

test('shape beyond safe integers', () =>
  rejects(craftBytes({ a: entry('F32', [2 ** 30, 2 ** 30, 2 ** 30], 0, 8) }, f32x2), /too many elements/));

test('data_offsets not a pair', () =>
  rejects(
    craftBytes({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, f32x2),
    /data_offsets \[0\] is not \[begin, end\]/,
  ));

test('negative data offset', () =>
  rejects(craftBytes({ a: entry('F32', [2], -8, 0) }, f32x2), /data_offsets \[-8,0\]/));

test('begin > end', () => rejects(craftBytes({ a: entry('F32', [0], 8, 0) }, f32x2), /begin > end/));

test('byte size does not match shape × dtype', () =>
  rejects(
    craftBytes({ a: entry('F32', [3], 0, 8) }, f32x2),
    /byte size 8 does not match shape \[3\] × F32 \(12 bytes\)/,
  ));

test('hole in the offsets', () =>
  rejects(
    craftBytes({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 16, 24) }, new Uint8Array(24)),
    /hole: 8 unused bytes after "a"/,
  ));

test('hole at the start of the data', () =>
  rejects(craftBytes({ a: entry('F32', [2], 8, 16) }, new Uint8Array(16)), /hole: 8 unused bytes at the start/));

test('overlapping offsets', () =>
  rejects(
    craftBytes({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 4, 12) }, new Uint8Array(12)),
    /overlap: "b" starts at 4, inside "a"/,
  ));

test('file shorter than header promises: truncated or still being written', () =>
  rejects(craftBytes({ a: entry('F32', [4], 0, 16) }, new Uint8Array(10)), /truncated or still being written/));

test('file longer than header promises: trailing bytes', () =>
  rejects(craftBytes({ a: entry('F32', [2], 0, 8) }, new Uint8Array(11)), /3 trailing bytes/));

test('duplicate tensor names', () =>
  rejects(
    craftBytes(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
      f32x2,
    ),
    /duplicate tensor name "a"/,
  ));

test('duplicate detection is not fooled by keys inside strings and nested objects', () => {
  const header =
    '{"__metadata__":{"a":"{\\"b\\":1,\\"b\\":2}","a2":"x"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const f = SafetensorsFile.open(craftFile(craftBytes(header, f32x2)));
  assert.deepEqual([...f.tensors.keys()], ['b']);
  f.close();
});

test('probeComplete: complete, growing, header still partial, and missing files', () => {
  const full = craftBytes({ a: entry('F32', [4], 0, 16) }, new Uint8Array(16));
  const done = craftFile(full);
  assert.deepEqual(probeComplete(done), {
    complete: true,
    expectedSize: full.length,
    actualSize: full.length,
    pending: false,
  });

  const growing = craftFile(full.subarray(0, full.length - 5));
  assert.deepEqual(probeComplete(growing), {
    complete: false,
    expectedSize: full.length,
    actualSize: full.length - 5,
    pending: true,
  });
  appendFileSync(growing, full.subarray(full.length - 5));
  assert.equal(probeComplete(growing).complete, true);

  // the prefix, or the header it announces, not all there yet: a slow writer, not a bad file
  const partialHeader = craftFile(full.subarray(0, 20));
  assert.deepEqual(probeComplete(partialHeader), {
    complete: false,
    expectedSize: null,
    actualSize: 20,
    pending: true,
  });
  for (const n of [0, 3, 7])
    assert.deepEqual(probeComplete(craftFile(full.subarray(0, n))), {
      complete: false,
      expectedSize: null,
      actualSize: n,
      pending: true,
    });
  assert.deepEqual(probeComplete(done + '.missing'), {
    complete: false,
    expectedSize: null,
    actualSize: 0,
    pending: false,
  });

  // a too-long file is not complete either (the header says it should be shorter)
  const longer = craftFile(Buffer.concat([full, Buffer.alloc(2)]));
  assert.deepEqual(probeComplete(longer), {
    complete: false,
    expectedSize: full.length,
    actualSize: full.length + 2,
    pending: false,
  });
});

test('probeComplete: a complete header that is invalid, or a length over the limit, is not pending', () => {
  for (const bytes of [
    craftBytes('{"a": not json!}', new Uint8Array(64)),
    craftBytes('[1,2,3]'),
    craftBytes({ a: entry('Q4', [4], 0, 16) }, new Uint8Array(16)),
    craftBytes({}, new Uint8Array(0), { lengthPrefix: 200n << 20n }),
    Buffer.from('this is not a model\n'),
  ]) {
    const probe = probeComplete(craftFile(bytes));
    assert.deepEqual(probe, { complete: false, expectedSize: null, actualSize: bytes.length, pending: false });
  }
});
