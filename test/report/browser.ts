/**
 * Opens a report in headless Chromium (Debian's package; puppeteer-core drives it and downloads
 * nothing) and reports what a reader's browser would complain about. Not a test file itself.
 */
import puppeteer from 'puppeteer-core';

export const CHROMIUM = process.env.CMERGE_CHROMIUM ?? '/usr/bin/chromium';

export interface PlotSeen {
  pipeline: string;
  id: string;
  svgs: number;
  width: number;
  height: number;
  /** data marks (points, lines, cells, labels) */
  marks: number;
  /** of those, the ones with a non-empty box */
  visibleMarks: number;
  note: string;
}

export interface TableSeen {
  pipeline: string;
  name: string;
  rows: { cells: string[]; markers: string[] }[];
}

export interface PageSeen {
  pipelines: string[];
  plots: PlotSeen[];
  tables: TableSeen[];
}

/**
 * Runs in the page (serialized by puppeteer: self-contained). Plots and tables as drawn: sizes from
 * layout, marks from Vega's SVG classes (role-mark groups hold the data marks, not the axes).
 */
export function inspectPage(): PageSeen {
  const sections = [...document.querySelectorAll<HTMLElement>('section[data-pipeline]')];
  const plots = sections.flatMap((s) =>
    [...s.querySelectorAll<HTMLElement>('figure[data-plot]')].map((fig) => {
      const svg = fig.querySelector('svg');
      const box = svg?.getBoundingClientRect();
      const marks = [...fig.querySelectorAll<SVGGraphicsElement>('.role-mark > path, .role-mark > text')];
      return {
        pipeline: s.dataset.pipeline!,
        id: fig.dataset.plot!,
        svgs: fig.querySelectorAll('svg').length,
        width: box?.width ?? 0,
        height: box?.height ?? 0,
        marks: marks.length,
        visibleMarks: marks.filter((m) => {
          const b = m.getBBox();
          return b.width > 0 || b.height > 0;
        }).length,
        note: fig.querySelector('.note')?.textContent ?? '',
      };
    }),
  );
  const tables = sections.flatMap((s) =>
    [...s.querySelectorAll<HTMLElement>('[data-table]')].map((t) => ({
      pipeline: s.dataset.pipeline!,
      name: t.dataset.table!,
      rows: [...t.querySelectorAll('tbody tr')].map((tr) => ({
        cells: [...tr.querySelectorAll('td')].map((td) => td.textContent ?? ''),
        markers: [...tr.querySelectorAll<HTMLElement>('[data-marker]')].map((m) => m.dataset.marker!),
      })),
    })),
  );
  return { pipelines: sections.map((s) => s.dataset.pipeline!), plots, tables };
}

/**
 * Loads `url`, collects console errors and warnings, page errors, failed requests and every
 * request other than the page itself (a self-contained report makes none), runs `inspect` in the
 * page, and saves a screenshot of the page from its top to the end of the first pipeline's plots.
 */
export async function openInChromium<T>(
  url: string,
  screenshot: string | null,
  inspect: () => T,
): Promise<{ problems: string[]; result: T }> {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    // CI runs as root, where Chromium's sandbox cannot start
    args: ['--no-sandbox', '--disable-gpu'],
    headless: true,
  });
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warn') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${String(e)}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    page.on('request', (r) => {
      if (r.url() !== url) problems.push(`request: ${r.url()}`);
    });
    await page.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
    const response = await page.goto(url, { waitUntil: 'load' });
    if (!response?.ok()) problems.push(`load: ${response?.status()}`);
    const result = await page.evaluate(inspect);
    if (screenshot) {
      const bottom = await page.evaluate(() => document.querySelector('.plots')?.getBoundingClientRect().bottom ?? 900);
      await page.screenshot({ path: screenshot, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(bottom) + 24 } });
    }
    return { problems, result: result as T };
  } finally {
    await browser.close();
  }
}
