import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closest, editDistance } from '../../src/util/edit-distance.js';

test('editDistance counts insertions, deletions and substitutions', () => {
  assert.equal(editDistance('', ''), 0);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('methd', 'method'), 1);
  assert.equal(editDistance('alpah', 'alpha'), 2);
  assert.equal(editDistance('kitten', 'sitting'), 3);
});

test('closest: the nearest candidate within reach, or none', () => {
  const keys = ['name', 'base', 'drop', 'repository', 'method', 'params', 'retention', 'settle_ms'];
  assert.equal(closest('methd', keys), 'method');
  assert.equal(closest('retension', keys), 'retention');
  assert.equal(closest('Base', keys), 'base');
  assert.equal(closest('repo', keys), null);
  assert.equal(closest('xy', ['ab']), null);
  assert.equal(closest('anything', []), null);
});
