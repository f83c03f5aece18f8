/**
 * `cmerge report` and the daemon's `/report/{pipeline}`: one self-contained HTML file per call
 * (plots rendered to inline SVG here, no script, no network), docs/report.md.
 */
import { reportData as readReportData, type ReportData, type Store } from '../store/index.js';
import { cmergeVersion } from '../util/version.js';
import { page } from './html.js';
import { pipelineSection } from './section.js';

export type { ReportData } from '../store/index.js';

/** What the report shows of `pipeline`, read from the store (read-only). */
export function reportData(store: Store, pipeline: string): ReportData {
  return readReportData(store.db, pipeline);
}

/**
 * The report of one or more pipelines as one HTML document. Async because Vega renders
 * asynchronously; the result is a complete string (nothing is loaded when it is opened).
 */
export async function renderReport(data: ReportData | ReportData[], generatedAt = new Date()): Promise<string> {
  const all = Array.isArray(data) ? data : [data];
  const sections: string[] = [];
  for (const [i, d] of all.entries()) sections.push(await pipelineSection(d, i));
  const names = all.map((d) => d.pipeline);
  const title = names.length === 1 ? `cmerge report: ${names[0]}` : 'cmerge report';
  const subtitle = `generated ${generatedAt.toISOString()} by cmerge ${cmergeVersion()} from the lineage database`;
  return page(title, subtitle, names, sections);
}

/**
 * For the daemon's HTTP API (`GET /report/{pipeline}`): the pipeline's report page. A pipeline the
 * database does not know yet (configured, nothing dropped) gets a report that says so in its notes;
 * telling unknown names apart (404) is the caller's job, from the config.
 */
export function renderPipelineReport(store: Store, pipeline: string): Promise<string> {
  return renderReport(reportData(store, pipeline));
}
