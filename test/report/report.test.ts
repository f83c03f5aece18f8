/**
 * `cmerge report` as the real CLI process over a real SQLite state (fixture.ts), then the file
 * opened in headless Chromium (Debian's `chromium`, driven by puppeteer-core): no console error,
 * no request at all, every plot an SVG with size and marks, the tables and their markers.
 *
 * CMERGE_REPORT_SCREENSHOT=1 also writes docs/report.png (the clip pipeline's report).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { before, test } from 'node:test';
import { reportData } from '../../src/report/index.js';
import { openStore } from '../../src/store/index.js';
import { cmerge } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';
import { buildReportFixture, HTML_NAME, type ReportFixture } from './fixture.js';
import { CHROMIUM, inspectPage, openInChromium } from './browser.js';

let f: ReportFixture;
let all: string;
before(() => {
  f = buildReportFixture();
  all = join(f.root, 'report.html');
  const r = cmerge(['report', '--config', f.cfg, '--out', all]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '');
});

/** The plots each pipeline of the fixture draws; the others are notes. */
const DRAWN: Record<string, string[]> = {
  clip: ['lambda', 'norms', 'removed_share', 'interference', 'retention', 'accuracy', 'acc_bwt', 'durations'],
  // task arithmetic has no λ, removed share or interference; no evaluator
  text: ['norms', 'retention', 'durations'],
  // nothing dropped yet
  idle: [],
};
const PLOTS = DRAWN.clip!;

test('report: one self-contained file, a section per pipeline, every name escaped', (t) => {
  const html = readFileSync(all, 'utf8');
  t.diagnostic(`report of the test state: ${(statSync(all).size / 1024).toFixed(1)} KiB`);
  assert.deepEqual(
    [...html.matchAll(/<section [^>]*data-pipeline="([^"]+)"/g)].map((m) => m[1]),
    ['clip', 'text', 'idle'],
  );
  // nothing to fetch: no script, stylesheet, image or frame source; the only URLs are SVG namespaces
  assert.doesNotMatch(html, /<script|<link|<iframe|<img|\bsrc=|@import|url\((?!#)/i);
  const urls = new Set(html.match(/https?:\/\/[^"'\s)]+/g));
  assert.deepEqual([...urls].sort(), ['http://www.w3.org/1999/xlink', 'http://www.w3.org/2000/svg']);
  // the checkpoint named with HTML is text everywhere, in the tables and in the SVG labels
  assert.ok(!html.includes(HTML_NAME), 'the raw name never appears');
  assert.ok(html.includes('ck-&lt;b&gt;&amp;&quot;b&quot;.safetensors'));
  assert.equal((html.match(/<svg /g) ?? []).length, Object.values(DRAWN).flat().length);
});

test('report --pipeline: that pipeline alone; an unknown one is an error naming the known ones', () => {
  const out = join(f.root, 'idle.html');
  const r = cmerge(['report', '--config', f.cfg, '--pipeline', 'idle', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const html = readFileSync(out, 'utf8');
  assert.deepEqual(
    [...html.matchAll(/data-pipeline="([^"]+)"/g)].map((m) => m[1]),
    ['idle'],
  );
  assert.ok(!html.includes('<svg'), 'nothing merged: notes, no chart');
  assert.match(html, /Nothing merged yet\./);
  assert.match(html, /No versions published yet\./);

  const bad = cmerge(['report', '--config', f.cfg, '--pipeline', 'nope', '--out', join(f.root, 'nope.html')]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /unknown pipeline "nope" \(known: clip, text, idle\)/);
  assert.ok(!existsSync(join(f.root, 'nope.html')));
});

test('report data: lineage markers, ACC and BWT over steps ending at accuracySummary, λ per step', () => {
  const store = openStore(f.dbPath, { readonly: true });
  try {
    const clip = reportData(store, 'clip');
    const marks = clip.versions.map((v) => [v.number, v.current, v.pinned, v.removed_at !== null, v.lineage]);
    assert.deepEqual(marks, [
      [1, false, false, true, 'current'],
      [2, false, true, false, 'current'],
      [3, false, false, false, 'current'],
      [4, false, false, false, 'rolled_back'],
      [5, false, false, false, 'current'],
      [6, true, false, false, 'current'],
    ]);
    assert.deepEqual(
      clip.merges.map((m) => [m.step, m.version, m.lineage]),
      [
        [1, 1, 'current'],
        [2, 2, 'current'],
        [3, 3, 'current'],
        [4, 4, 'rolled_back'],
        [4, 5, 'current'],
        [5, 6, 'current'],
      ],
    );
    assert.equal(clip.merges[0]!.lambda, 1);
    assert.equal(clip.merges[0]!.duration_s, 1);
    const summary = store.accuracySummary('clip');
    const last = clip.accuracy_over_steps.at(-1)!;
    assert.deepEqual(
      clip.accuracy_over_steps.map((p) => p.step),
      [1, 2, 3, 4, 5],
    );
    assert.equal(last.average_accuracy, summary.average_accuracy);
    assert.equal(last.bwt, summary.bwt);
    assert.equal(clip.accuracy_over_steps[0]!.bwt, null, 'no earlier task at step 1');
    assert.equal(clip.retention.length, 5);

    const text = reportData(store, 'text');
    assert.deepEqual(
      text.versions.map((v) => [v.number, v.kind, v.lineage]),
      [
        [1, 'merge', 'current'],
        [2, 'merge', 'reverted'],
        [3, 'merge', 'reverted'],
        [4, 'revert', 'current'],
      ],
    );
    assert.equal(text.checkpoints.find((c) => c.name === 't2.safetensors')!.retired, 'reverted');
    assert.ok(text.merges.every((m) => m.lambda === null && m.removed_share === null));
  } finally {
    store.close();
  }
});

test('report in headless Chromium: no console error, no request, every plot drawn, tables and markers', async (t) => {
  if (!existsSync(CHROMIUM)) {
    // CI installs chromium (.ci/run): there a missing browser is a failure, not a skip
    if (process.env.CI) assert.fail(`${CHROMIUM} is missing (apt-get install chromium)`);
    return t.skip(`${CHROMIUM} not installed (apt-get install chromium)`);
  }
  const shot = process.env.CMERGE_REPORT_SCREENSHOT ? join(repoRoot, 'docs', 'report.png') : null;
  const clipOnly = join(f.root, 'clip.html');
  assert.equal(cmerge(['report', '--config', f.cfg, '--pipeline', 'clip', '--out', clipOnly]).status, 0);
  for (const [file, screenshot] of [
    [all, null],
    [clipOnly, shot ?? join(f.root, 'clip.png')],
  ] as const) {
    const seen = await openInChromium(pathToFileURL(file).href, screenshot, inspectPage);
    assert.deepEqual(seen.problems, [], `${file}: console errors, page errors or requests`);
    const page = seen.result;
    for (const [pipeline, drawn] of Object.entries(DRAWN)) {
      if (!page.pipelines.includes(pipeline)) continue;
      const plots = page.plots.filter((p) => p.pipeline === pipeline);
      assert.deepEqual(plots.map((p) => p.id).sort(), [...PLOTS].sort(), `${pipeline}: every plot has its place`);
      for (const p of plots) {
        if (drawn.includes(p.id)) {
          assert.equal(p.svgs, 1, `${pipeline}/${p.id}: one SVG`);
          assert.ok(p.width > 100 && p.height > 50, `${pipeline}/${p.id}: drawn at ${p.width}×${p.height}`);
          assert.ok(
            p.marks > 0 && p.visibleMarks > 0,
            `${pipeline}/${p.id}: ${p.marks} marks, ${p.visibleMarks} visible`,
          );
        } else {
          assert.equal(p.svgs, 0, `${pipeline}/${p.id}: no chart without data`);
          assert.ok(p.note.length > 10, `${pipeline}/${p.id}: a note says why`);
        }
      }
    }
    const versions = page.tables.find((x) => x.pipeline === 'clip' && x.name === 'versions')!;
    assert.deepEqual(
      versions.rows.map((r) => [r.cells[0], r.markers]),
      [
        ['6', ['current']],
        ['5', []],
        ['4', ['rolled_back']],
        ['3', []],
        ['2', ['pinned']],
        ['1', ['removed']],
      ],
    );
    const rejections = page.tables.find((x) => x.pipeline === 'clip' && x.name === 'rejections')!;
    assert.deepEqual(rejections.rows.map((r) => r.cells[0]).sort(), ['bad.safetensors', 'ck-nan.safetensors']);
    const checkpoints = page.tables.find((x) => x.pipeline === 'clip' && x.name === 'checkpoints')!;
    assert.ok(
      checkpoints.rows.some((r) => r.cells[1] === `${HTML_NAME}.safetensors`),
      'the HTML name shows as text',
    );
    assert.deepEqual(checkpoints.rows.find((r) => r.cells[1] === 'ck-d.safetensors')!.markers, [
      'merged',
      'rolled_back',
    ]);
    const names = page.tables.filter((x) => x.pipeline === 'clip').map((x) => x.name);
    assert.deepEqual(names, ['versions', 'checkpoints', 'rejections', 'notifications', 'operations']);
    if (page.pipelines.includes('text')) {
      const textCheckpoints = page.tables.find((x) => x.pipeline === 'text' && x.name === 'checkpoints')!;
      assert.deepEqual(textCheckpoints.rows.find((r) => r.cells[1] === 't2.safetensors')!.markers, [
        'merged',
        'reverted',
      ]);
    }
  }
  if (shot) t.diagnostic(`wrote ${shot}`);
});
