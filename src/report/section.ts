/** One pipeline's part of the report: its state in a line, the plots, then the tables. */
import type { ReportData } from '../store/index.js';
import { esc } from './html.js';
import { pipelinePlots, type Plot } from './plots.js';
import { renderSvg } from './svg.js';
import { checkpointsTable, notificationsTable, operationsTable, rejectionsTable, versionsTable } from './tables.js';

function summary(d: ReportData): string {
  const parts = [
    d.current_version === null ? 'no version yet' : `current version ${d.current_version}`,
    d.latest_version !== null && d.latest_version !== d.current_version ? `newest ${d.latest_version}` : '',
    `${d.merged} checkpoint${d.merged === 1 ? '' : 's'} in the lineage`,
    `${d.queued} queued`,
    d.paused ? `merging paused since ${d.paused.since}: ${d.paused.reason}` : '',
  ];
  return parts.filter(Boolean).join(' · ');
}

/** The plot drawn as SVG, or its note; `key` keeps SVG ids apart across the page's plots. */
async function figure(p: Plot, key: string): Promise<string> {
  const caption = `<figcaption><strong>${esc(p.title)}</strong>${esc(p.caption)}</figcaption>`;
  const body = p.spec ? await renderSvg(p.spec, key) : `<p class="note">${esc(p.note)}</p>`;
  const cls = p.spec ? 'plot' : 'plot empty';
  return `<figure class="${cls}" data-plot="${esc(p.id)}">${caption}\n${body}</figure>`;
}

/** `index` numbers the section on its page (SVG ids must be unique across the whole page). */
export async function pipelineSection(d: ReportData, index: number): Promise<string> {
  const figures: string[] = [];
  for (const p of pipelinePlots(d)) figures.push(await figure(p, `s${index}-${p.id}`));
  const name = esc(d.pipeline);
  return `<section class="pipeline" id="pipeline-${name}" data-pipeline="${name}">
<h2>Pipeline ${name}</h2>
<p class="meta">${esc(summary(d))}</p>
<h3>Versions</h3>
${versionsTable(d)}
<h3>Metrics</h3>
<div class="plots">
${figures.join('\n')}
</div>
<h3>Checkpoints</h3>
${checkpointsTable(d)}
<h3>Rejections</h3>
${rejectionsTable(d)}
<h3>Notifications</h3>
${notificationsTable(d)}
<h3>Operations</h3>
${operationsTable(d)}
</section>`;
}
