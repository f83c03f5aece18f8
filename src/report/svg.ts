/**
 * Vega-Lite spec → inline SVG, rendered in Node: the report carries finished drawings, so the page
 * needs no script and no network (docs/report.md).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { log } from '../util/log.js';

/**
 * Vega's and Vega-Lite's warnings go to cmerge's log at debug level: on the console they would
 * interleave with the daemon's JSON log lines (and stdout of a one-shot command).
 */
function quietLogger(): vega.LoggerInterface {
  let level = vega.Warn;
  const to =
    (what: string) =>
    (...args: unknown[]) => {
      log.debug(`report: vega ${what}: ${args.map(String).join(' ')}`);
      return logger;
    };
  const logger: vega.LoggerInterface = {
    level(l?: number) {
      if (l === undefined) return level;
      level = l;
      return logger;
    },
    error: to('error'),
    warn: to('warn'),
    info: to('info'),
    debug: to('debug'),
  };
  return logger;
}

/** A loader that refuses everything: the specs carry their data inline, and a report never fetches. */
const offline: vega.Loader = {
  load: (uri) => Promise.reject(new Error(`report: no loading (${uri})`)),
  sanitize: (uri) => Promise.reject(new Error(`report: no loading (${uri})`)),
  http: (uri) => Promise.reject(new Error(`report: no network (${uri})`)),
  file: (name) => Promise.reject(new Error(`report: no files (${name})`)),
};

/**
 * Vega numbers clip paths and gradients from process-wide counters (reset by anyone calling
 * resetSVGDefIds): prefixing each drawing's ids keeps several drawings on one page from
 * referencing each other's definitions.
 */
function namespaceIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}-$1"`);
}

/** The drawing of `spec` as an SVG element; `id` names its definitions apart from other drawings'. */
export async function renderSvg(spec: TopLevelSpec, id: string): Promise<string> {
  const logger = quietLogger();
  const compiled = compile(spec, { logger }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', loader: offline, logger });
  try {
    return namespaceIds(await view.toSVG(), id);
  } finally {
    view.finalize();
  }
}
