/**
 * The two kinds of Vega-Lite chart the report draws: a series over merge steps, and a heatmap.
 * Data go in inline (`values`), so rendering never loads anything (svg.ts refuses to).
 */
import type { TopLevelSpec } from 'vega-lite';

/** One point of a series over merge steps. */
export interface StepPoint {
  step: number;
  value: number;
  /** which series (one line per series) */
  series: string;
  /** on the current lineage or off it (rolled back, reverted): a point shape of its own */
  lineage: string;
}

const WIDTH = 520;
const HEIGHT = 170;
/** the most a heatmap's rows take (then rows get thinner) */
const HEAT_HEIGHT = 420;
const FONT = 'system-ui, sans-serif';

/** Shared look: white background, no frame; a font every machine has (nothing to download). */
const CONFIG = {
  background: 'white',
  font: FONT,
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 11, gridColor: '#e8e8e8' },
  legend: { labelFontSize: 11, titleFontSize: 11 },
} as const;

/**
 * Points and lines over merge steps: one color per series, one shape per lineage status (so a
 * rolled-back merge's figures stay visible without being joined to the lineage that replaced it).
 */
export function stepSpec(
  points: StepPoint[],
  opts: { description: string; yTitle: string; zero?: boolean; yFormat?: string },
): TopLevelSpec {
  const several = (key: 'series' | 'lineage') => new Set(points.map((p) => p[key])).size > 1;
  // points shrink on long pipelines, where they would merge into a band
  const perSeries = points.length / new Set(points.map((p) => p.series)).size;
  const size = perSeries > 60 ? 8 : perSeries > 30 ? 24 : 55;
  return {
    description: opts.description,
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values: points },
    encoding: {
      x: {
        field: 'step',
        type: 'quantitative',
        title: 'merge step t',
        axis: { tickMinStep: 1, format: 'd' },
        scale: { zero: false, nice: false, padding: 16 },
      },
      y: {
        field: 'value',
        type: 'quantitative',
        title: opts.yTitle,
        scale: { zero: opts.zero ?? false },
        axis: opts.yFormat ? { format: opts.yFormat } : {},
      },
      color: { field: 'series', type: 'nominal', legend: several('series') ? { title: null, orient: 'top' } : null },
    },
    layer: [
      { mark: { type: 'line', strokeWidth: 1.5 }, encoding: { detail: { field: 'lineage', type: 'nominal' } } },
      {
        mark: { type: 'point', filled: true, size, opacity: 1 },
        encoding: {
          shape: {
            field: 'lineage',
            type: 'nominal',
            legend: several('lineage') ? { title: null, orient: 'top' } : null,
          },
        },
      },
    ],
  };
}

/** One cell of a heatmap: its row and column label and its value. */
export interface Cell {
  row: string;
  col: string;
  value: number;
}

/**
 * A matrix as colored cells with their values written in: rows and columns in the order given
 * (steps top to bottom, tasks in merge order), empty cells left blank.
 */
export function heatmapSpec(
  cells: Cell[],
  opts: { description: string; rows: string[]; cols: string[]; rowTitle: string; colTitle: string; valueTitle: string },
): TopLevelSpec {
  const values = cells.map((c) => c.value);
  const middle =
    values.reduce((a, b) => Math.min(a, b), Infinity) / 2 + values.reduce((a, b) => Math.max(a, b), -Infinity) / 2;
  // a long pipeline's matrix still fits the page: cells shrink, and below ~28 px lose their labels
  const colStep = Math.max(4, Math.min(56, Math.floor(WIDTH / Math.max(opts.cols.length, 1))));
  const rowStep = Math.max(4, Math.min(24, Math.floor(HEAT_HEIGHT / Math.max(opts.rows.length, 1))));
  const labelled = colStep >= 28 && rowStep >= 14;
  return {
    description: opts.description,
    width: { step: colStep },
    height: { step: rowStep },
    config: CONFIG,
    data: { values: cells },
    encoding: {
      x: {
        field: 'col',
        type: 'ordinal',
        sort: opts.cols,
        title: opts.colTitle,
        axis: { labelAngle: -30, values: sparse(opts.cols) },
      },
      y: { field: 'row', type: 'ordinal', sort: opts.rows, title: opts.rowTitle, axis: { values: sparse(opts.rows) } },
    },
    layer: [
      {
        // no per-cell aria label: a matrix of a few thousand cells would double the file for it
        mark: { type: 'rect', stroke: 'white', strokeWidth: labelled ? 1 : 0, aria: false },
        encoding: {
          color: { field: 'value', type: 'quantitative', title: opts.valueTitle, scale: { scheme: 'blues' } },
        },
      },
      ...(labelled ? [cellLabels(middle)] : []),
    ],
  };
}

/** At most about 25 axis labels (every k-th, the last one always): more would overlap. */
function sparse(labels: string[]): string[] {
  const every = Math.ceil(labels.length / 25);
  return labels.filter((_, i) => i % every === 0 || i === labels.length - 1);
}

/** The value written in each cell; dark cells (above the middle of the range) get light text. */
function cellLabels(middle: number) {
  return {
    mark: { type: 'text' as const, fontSize: 10, aria: false },
    encoding: {
      text: { field: 'value', type: 'quantitative' as const, format: '.3~f' },
      color: { condition: { test: `datum.value > ${middle}`, value: 'white' }, value: 'black' },
    },
  };
}
