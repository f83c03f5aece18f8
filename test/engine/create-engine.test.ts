import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEngine } from '../../src/engine/index.js';
import { loadLinalg, loadNativeAddon } from '../../src/engine/native.js';

const linalg = loadLinalg();

test('portable is always available', () => {
  const engine = createEngine('portable');
  assert.equal(engine.name, 'portable');
  engine.close();
});

test('auto picks native exactly when the addon loaded', () => {
  const engine = createEngine('auto');
  assert.equal(engine.name, linalg.addon ? 'native' : 'portable');
  engine.close();
});

test('native with threads applies the BLAS thread count', { skip: linalg.addon ? false : `native addon absent: ${linalg.error?.message}` }, () => {
  const before = linalg.addon!.getThreads();
  try {
    const engine = createEngine('native', { threads: 1 });
    assert.equal(engine.name, 'native');
    assert.equal(linalg.addon!.getThreads(), 1);
    engine.close();
  } finally {
    linalg.addon!.setThreads(before);
  }
});

test('native when the addon is absent throws, saying why', { skip: linalg.addon ? 'native addon present on this machine' : false }, () => {
  assert.throws(() => createEngine('native'), /native engine unavailable: .*cmerge_linalg/);
});

test('a missing addon loads as null with a reason, never throws', () => {
  const load = loadNativeAddon('cmerge_does_not_exist');
  assert.equal(load.addon, null);
  assert.match(load.error!.message, /cmerge_does_not_exist\.node is not built/);
});

test('an unknown choice is an error', () => {
  assert.throws(() => createEngine('gpu' as 'auto'), /unknown engine "gpu"/);
});
