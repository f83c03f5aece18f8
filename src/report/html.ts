/**
 * HTML pieces of the report: escaping, tables, badges and the page around the sections. Every text
 * that comes from the database is escaped here (checkpoint names are file names: anything goes).
 */

/** Markup already built (by this module or an SVG renderer), passed through unescaped. */
export class Html {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

export type CellValue = string | number | null | undefined | Html;

/** A cell's markup: Html as is, null as a dash, anything else escaped. */
export function cell(v: CellValue): string {
  if (v instanceof Html) return v.html;
  if (v === null || v === undefined || v === '') return '<span class="dim">–</span>';
  return esc(String(v));
}

/** A table with a name for readers and tests (data-table), or a note when there are no rows. */
export function table(name: string, headers: string[], rows: CellValue[][], empty: string): string {
  if (!rows.length) return `<p class="note" data-table="${esc(name)}">${esc(empty)}</p>`;
  const head = headers.map((h) => `<th>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((v) => `<td>${cell(v)}</td>`).join('')}</tr>`).join('\n');
  return `<table data-table="${esc(name)}"><thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody></table>`;
}

export interface Badge {
  text: string;
  /** picks the color; also the data-marker attribute */
  kind: string;
  /** tooltip (when it happened) */
  title?: string | null;
}

/** Small colored labels (current, pinned, rolled back, rejected...). */
export function badges(labels: Badge[]): Html {
  return new Html(
    labels
      .map((l) => {
        const title = l.title ? ` title="${esc(l.title)}"` : '';
        return `<span class="badge ${esc(l.kind)}" data-marker="${esc(l.kind)}"${title}>${esc(l.text)}</span>`;
      })
      .join(' '),
  );
}

/** "2026-12-05 16:11:18Z": the stored ISO time, shorter (tables are wide enough already). */
export function when(iso: string | null): string | null {
  return iso && iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** The first 12 hex digits, the whole sha256 in the tooltip. */
export function shortSha(s: string | null): Html | null {
  return s ? new Html(`<code title="${esc(s)}">${esc(s.slice(0, 12))}</code>`) : null;
}

/**
 * Inline style only, and a content security policy that forbids every load: a reference to
 * anything outside the file would be blocked (and show in the console) instead of fetched.
 */
const HEAD = `<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`;

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1180px; padding: 0 16px; color: #1b1b1b; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-top: 1.6em; } .meta, .dim, figcaption { color: #555; } .note { color: #666; font-style: italic; }
table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0; } th { text-align: left; background: #f3f3f3; }
th, td { border: 1px solid #ddd; padding: 3px 6px; vertical-align: top; } td code { font-size: 0.95em; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; align-items: start; }
figure.plot { margin: 0; border: 1px solid #e5e5e5; border-radius: 6px; padding: 8px; overflow-x: auto; }
figcaption { font-size: 0.85em; margin-bottom: 6px; } figcaption strong { color: #1b1b1b; display: block; }
.badge { display: inline-block; white-space: nowrap; border-radius: 8px; padding: 0 6px; font-size: 0.8em; color: white; background: #777; }
.badge.current, .badge.ok, .badge.merged { background: #2e7d32; } .badge.pinned { background: #1565c0; }
.badge.removed, .badge.superseded, .badge.queued, .badge.merging { background: #757575; }
.badge.rolled_back, .badge.reverted, .badge.refused { background: #ef6c00; }
.badge.rejected, .badge.failed { background: #c62828; } nav a { margin-right: 12px; }
`;

/** The whole document: head with style, the title block and the sections. */
export function page(title: string, subtitle: string, nav: string[], sections: string[]): string {
  const links = nav.map((n) => `<a href="#pipeline-${esc(n)}">${esc(n)}</a>`).join('');
  return `<!DOCTYPE html>
<html lang="en">
<head>
${HEAD}
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p class="meta">${esc(subtitle)}</p>
${nav.length > 1 ? `<nav>${links}</nav>` : ''}
${sections.join('\n')}
</body>
</html>
`;
}
