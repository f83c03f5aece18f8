// Static SVG plots for the quality report, written by hand so the bench needs no plotting dependency.

const FONT = 'font-family="sans-serif" font-size="12"';
const CELL = 34;
/** Tableau 10: distinguishable categorical colours for the series. */
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];
const LOW = [255, 255, 255];
const HIGH = [8, 48, 107];

const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** Rough width of a label in px; SVG has no text metrics, so the layout reserves this much room. */
const textWidth = (s: string, size = 12) => Math.ceil(s.length * size * 0.6);
const isValue = (v: number | null | undefined): v is number => v != null && Number.isFinite(v);
const clamp01 = (v: number) => Math.min(1, Math.max(0, v));
const text = (x: number, y: number, s: string, attrs = '') =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(s)}</text>`;

function svg(width: number, height: number, body: string[]): string {
  const w = Math.ceil(width);
  const h = Math.ceil(height);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ${FONT}>`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Sequential white → dark blue colour of v in [0,1], and whether text on it must be white to stay legible. */
function cellColour(v: number): { fill: string; darkBackground: boolean } {
  const rgb = LOW.map((lo, i) => Math.round(lo + (HIGH[i]! - lo) * clamp01(v)));
  const luminance = (0.299 * rgb[0]! + 0.587 * rgb[1]! + 0.114 * rgb[2]!) / 255;
  return { fill: `rgb(${rgb.join(',')})`, darkBackground: luminance < 0.55 };
}

/** Accuracy-matrix heatmap: rows = merge steps, cols = tasks; values in [0,1] or null (blank cell). */
export function heatmapSvg(opts: {
  title: string;
  rowLabels: readonly string[];
  colLabels: readonly string[];
  values: readonly (readonly (number | null)[])[];
}): string {
  const { title, rowLabels, colLabels, values } = opts;
  const diagonal = Math.SQRT1_2;
  const longestCol = Math.max(0, ...colLabels.map((s) => textWidth(s)));
  const left = 10 + Math.max(0, ...rowLabels.map((s) => textWidth(s)));
  const top = 34 + longestCol * diagonal + 8;
  const gridWidth = colLabels.length * CELL;
  const width = Math.max(left + gridWidth + longestCol * diagonal, 10 + textWidth(title, 13)) + 10;
  const height = top + rowLabels.length * CELL + 10;
  const body = [text(10, 20, title, 'font-size="13" font-weight="bold"')];
  colLabels.forEach((label, c) => {
    const x = left + (c + 0.5) * CELL;
    body.push(text(x, top - 6, label, `transform="rotate(-45 ${x.toFixed(1)} ${top - 6})"`));
  });
  rowLabels.forEach((label, r) => {
    const y = top + (r + 0.5) * CELL;
    body.push(text(left - 6, y, label, 'text-anchor="end" dominant-baseline="central"'));
    colLabels.forEach((_, c) => {
      const v = values[r]?.[c];
      const x = left + c * CELL;
      const colour = isValue(v) ? cellColour(v) : { fill: '#e6e6e6', darkBackground: false };
      body.push(`<rect x="${x}" y="${top + r * CELL}" width="${CELL}" height="${CELL}" fill="${colour.fill}"/>`);
      if (!isValue(v)) return;
      const ink = colour.darkBackground ? 'white' : 'black';
      const attrs = `text-anchor="middle" dominant-baseline="central" fill="${ink}"`;
      body.push(text(x + CELL / 2, y, String(Math.round(100 * v)), attrs));
    });
  });
  body.push(
    `<rect x="${left}" y="${top}" width="${gridWidth}" height="${rowLabels.length * CELL}" fill="none" stroke="#999"/>`,
  );
  return svg(width, height, body);
}

interface Frame {
  left: number;
  top: number;
  width: number;
  height: number;
  steps: number;
}

const xOf = (f: Frame, step: number) => f.left + (f.steps <= 1 ? f.width / 2 : ((step - 1) / (f.steps - 1)) * f.width);
const yOf = (f: Frame, v: number) => f.top + (1 - clamp01(v)) * f.height;

function axes(f: Frame, xLabel: string, yLabel: string): string[] {
  const out = [];
  for (let p = 0; p <= 100; p += 20) {
    const y = yOf(f, p / 100).toFixed(1);
    out.push(`<line x1="${f.left}" x2="${f.left + f.width}" y1="${y}" y2="${y}" stroke="#e6e6e6"/>`);
    out.push(text(f.left - 6, +y, `${p}%`, 'text-anchor="end" dominant-baseline="central"'));
  }
  for (let step = 1; step <= f.steps; step++) {
    const x = xOf(f, step).toFixed(1);
    const bottom = f.top + f.height;
    out.push(`<line x1="${x}" x2="${x}" y1="${bottom}" y2="${bottom + 4}" stroke="#333"/>`);
    out.push(text(+x, bottom + 16, String(step), 'text-anchor="middle"'));
  }
  const frame = `M${f.left},${f.top}V${f.top + f.height}H${f.left + f.width}`;
  out.push(`<path d="${frame}" fill="none" stroke="#333"/>`);
  out.push(text(f.left + f.width / 2, f.top + f.height + 36, xLabel, 'text-anchor="middle"'));
  const yMid = f.top + f.height / 2;
  out.push(text(16, yMid, yLabel, `text-anchor="middle" transform="rotate(-90 16 ${yMid})"`));
  return out;
}

/** One polyline per series; a null (or non-finite) value lifts the pen, so gaps show as breaks. */
function seriesPath(f: Frame, values: readonly (number | null)[], colour: string): string[] {
  let d = '';
  let penDown = false;
  const dots: string[] = [];
  values.forEach((v, i) => {
    if (!isValue(v)) {
      penDown = false;
      return;
    }
    const x = xOf(f, i + 1).toFixed(1);
    const y = yOf(f, v).toFixed(1);
    d += `${penDown ? 'L' : 'M'}${x},${y}`;
    penDown = true;
    dots.push(`<circle cx="${x}" cy="${y}" r="2.5" fill="${colour}"/>`);
  });
  return [`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"/>`, ...dots];
}

/** Dashed grey reference lines, labels at the right end nudged apart so close values stay readable. */
function referenceLines(f: Frame, refs: readonly { name: string; value: number }[]): string[] {
  const sorted = refs.filter((r) => isValue(r.value)).map((r) => ({ ...r, y: yOf(f, r.value) }));
  sorted.sort((a, b) => a.y - b.y);
  let labelY = -Infinity;
  return sorted.flatMap((r) => {
    labelY = Math.max(r.y, labelY + 13);
    const y = r.y.toFixed(1);
    const line = `<line x1="${f.left}" x2="${f.left + f.width}" y1="${y}" y2="${y}" stroke="#888" stroke-dasharray="5 4"/>`;
    return [line, text(f.left + f.width + 6, labelY, r.name, 'dominant-baseline="central" fill="#666"')];
  });
}

/** Line chart: one line per series over x = 1..n, y in [0,1] shown as %, optional dashed reference lines. */
export function linesSvg(opts: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly { name: string; values: readonly (number | null)[] }[];
  references?: readonly { name: string; value: number }[];
}): string {
  const { title, xLabel, yLabel, series, references = [] } = opts;
  const refWidth = Math.max(0, ...references.map((r) => textWidth(r.name))) + 16;
  const legendWidth = Math.max(0, ...series.map((s) => textWidth(s.name))) + 30;
  const steps = Math.max(1, ...series.map((s) => s.values.length));
  const f: Frame = { left: 64, top: 40, width: 520, height: 300, steps };
  const legendX = f.left + f.width + refWidth;
  const width = Math.max(legendX + legendWidth, 10 + textWidth(title, 13)) + 10;
  const height = Math.max(f.top + f.height + 50, f.top + 18 * series.length + 10);
  const body = [text(10, 22, title, 'font-size="13" font-weight="bold"'), ...axes(f, xLabel, yLabel)];
  body.push(...referenceLines(f, references));
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    body.push(...seriesPath(f, s.values, colour));
    const y = f.top + 6 + 18 * i;
    body.push(`<line x1="${legendX}" x2="${legendX + 18}" y1="${y}" y2="${y}" stroke="${colour}" stroke-width="3"/>`);
    body.push(text(legendX + 24, y, s.name, 'dominant-baseline="central"'));
  });
  return svg(width, height, body);
}
