import type { NotifyContext } from './types.js';

const PLACEHOLDER = /\{(version|path|pipeline|model_file)\}/g;

function value(ctx: NotifyContext, key: string): string {
  switch (key) {
    case 'version':
      return String(ctx.version);
    case 'path':
      return ctx.path;
    case 'pipeline':
      return ctx.pipeline;
    default:
      return ctx.modelFile;
  }
}

/**
 * Replace {version} {path} {pipeline} {model_file}. Other braces are left alone, so a JSON
 * string template like `{"model_path": "{path}"}` works. `encode` is applied to each value
 * (URLs use encodeURIComponent so a path can sit in a query string).
 */
export function renderTemplate(tpl: string, ctx: NotifyContext, encode: (s: string) => string = (s) => s): string {
  return tpl.replace(PLACEHOLDER, (_, key: string) => encode(value(ctx, key)));
}

/** Template every string leaf of a JSON-like value (keys untouched). */
export function renderDeep(v: unknown, ctx: NotifyContext): unknown {
  if (typeof v === 'string') return renderTemplate(v, ctx);
  if (Array.isArray(v)) return v.map((x) => renderDeep(x, ctx));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, renderDeep(x, ctx)]));
  }
  return v;
}

/** A URL template: values are percent-encoded except `/`, so `{path}` works in a path or a query. */
export function renderUrl(tpl: string, ctx: NotifyContext): string {
  return renderTemplate(tpl, ctx, (s) => encodeURIComponent(s).replace(/%2F/gi, '/'));
}
