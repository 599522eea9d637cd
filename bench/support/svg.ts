/**
 * Bench helper: a small SVG writer for the charts benches draw themselves
 * (no browser, no dependency): a line chart with shaded bands and a heat map
 * with outlined cells, placed on one page. Each function returns an SVG
 * fragment at the given position; {@link svgDocument} wraps them.
 */

/** A shaded interval of the x axis (e.g. an antagonist period), with a short label. */
export interface Band {
  from: number;
  to: number;
  label?: string;
}

export interface Series {
  name: string;
  color: string;
  /** [x, y] points; a gap where y is NaN. */
  points: [number, number][];
}

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
  title: string;
}

/** Six colours that stay apart for most readers (Okabe–Ito), then greys. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#999999'];

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const fmt = (n: number): string => (Math.round(n * 10) / 10).toString();

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${fmt(x)}" y="${fmt(y)}" ${attrs}>${escapeXml(content)}</text>`;
}

/** Round ticks for a log axis between `min` and `max` (1-2-5 per decade). */
function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let decade = 10 ** Math.floor(Math.log10(min)); decade <= max; decade *= 10) {
    for (const m of [1, 2, 5]) if (decade * m >= min && decade * m <= max) ticks.push(decade * m);
  }
  return ticks;
}

/**
 * A line chart: x linear from 0 to `xMax`, y log (`yMin`–`yMax`) or linear
 * from 0; `bands` shaded behind the lines; a legend under the title.
 */
export function lineChart(o: Box & { series: Series[]; bands: Band[]; xMax: number; xLabel: string; yLabel: string; yMin: number; yMax: number; logY: boolean }): string {
  const left = 56;
  const top = 54;
  const w = o.width - left - 12;
  const h = o.height - top - 32;
  const sx = (x: number): number => o.x + left + (x / o.xMax) * w;
  const y0 = o.logY ? Math.log10(o.yMin) : 0;
  const y1 = o.logY ? Math.log10(o.yMax) : o.yMax;
  const sy = (y: number): number => {
    const v = o.logY ? Math.log10(Math.min(o.yMax, Math.max(o.yMin, y))) : Math.min(o.yMax, y);
    return o.y + top + h - ((v - y0) / (y1 - y0)) * h;
  };
  const out: string[] = [text(o.x + left, o.y + 16, o.title, 'font-weight="bold"')];
  for (const b of o.bands) {
    out.push(`<rect x="${fmt(sx(b.from))}" y="${o.y + top}" width="${fmt(sx(b.to) - sx(b.from))}" height="${h}" fill="#000" fill-opacity="0.08"/>`);
    if (b.label !== undefined) out.push(text(sx(b.from) + 2, o.y + top + 10, b.label, 'font-size="9" fill="#555"'));
  }
  const yTicks = o.logY ? logTicks(o.yMin, o.yMax) : [0, 0.25, 0.5, 0.75, 1].map((f) => f * o.yMax);
  for (const t of yTicks) {
    out.push(`<line x1="${o.x + left}" x2="${o.x + left + w}" y1="${fmt(sy(t))}" y2="${fmt(sy(t))}" stroke="#ddd"/>`);
    out.push(text(o.x + left - 4, sy(t) + 3, String(Number(t.toPrecision(2))), 'text-anchor="end" font-size="10"'));
  }
  const xStep = o.xMax > 60 ? 10 : o.xMax > 20 ? 5 : 2;
  for (let t = 0; t <= o.xMax; t += xStep) out.push(text(sx(t), o.y + top + h + 14, String(t), 'text-anchor="middle" font-size="10"'));
  out.push(text(o.x + left + w / 2, o.y + o.height - 4, o.xLabel, 'text-anchor="middle" font-size="11"'));
  out.push(text(o.x + 12, o.y + top + h / 2, o.yLabel, `text-anchor="middle" font-size="11" transform="rotate(-90 ${o.x + 12} ${fmt(o.y + top + h / 2)})"`));
  out.push(`<rect x="${o.x + left}" y="${o.y + top}" width="${w}" height="${h}" fill="none" stroke="#888"/>`);
  for (const s of o.series) {
    let d = '';
    let pen = 'M';
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y)) {
        pen = 'M';
        continue;
      }
      d += `${pen}${fmt(sx(x))},${fmt(sy(y))}`;
      pen = 'L';
    }
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"/>`);
  }
  // The legend wraps to a second line (the top margin has room for two).
  let lx = o.x + left;
  let ly = o.y + 24;
  for (const s of o.series) {
    const w = 30 + s.name.length * 6.8;
    if (lx + w > o.x + o.width && lx > o.x + left) {
      lx = o.x + left;
      ly += 13;
    }
    out.push(`<rect x="${fmt(lx)}" y="${ly}" width="14" height="4" fill="${s.color}"/>`);
    out.push(text(lx + 18, ly + 6, s.name, 'font-size="11"'));
    lx += w;
  }
  return out.join('\n');
}

/** Heat maps colour values from HEAT_LOW (lightest) to 1 (darkest): the testbeds run at 70–85 %, where the differences are. */
export const HEAT_LOW = 0.4;

/** Colour of a value: light yellow at {@link HEAT_LOW} or below, dark red at 1; NaN grey. */
function heat(v: number): string {
  if (!Number.isFinite(v)) return '#eee';
  const f = Math.min(1, Math.max(0, (v - HEAT_LOW) / (1 - HEAT_LOW)));
  return `hsl(${Math.round(55 - 55 * f)},90%,${Math.round(92 - 55 * f)}%)`;
}

/**
 * A heat map: one row per `rows` label, one column per x step of `xStep`
 * (values[row][col] in 0–1); `outlines` draws a box around some rows over an
 * x interval (e.g. the backends an antagonist held).
 */
export function heatmap(o: Box & { rows: string[]; values: number[][]; xStep: number; xMax: number; outlines: { from: number; to: number; rows: number[] }[] }): string {
  const left = 56;
  const top = 20;
  const w = o.width - left - 12;
  const rowH = (o.height - top - 4) / o.rows.length;
  const sx = (x: number): number => o.x + left + (x / o.xMax) * w;
  const out: string[] = [text(o.x + left, o.y + 14, o.title, 'font-weight="bold" font-size="12"')];
  for (const [r, label] of o.rows.entries()) {
    const y = o.y + top + r * rowH;
    out.push(text(o.x + left - 4, y + rowH - 1, label, 'text-anchor="end" font-size="8"'));
    for (const [c, v] of (o.values[r] ?? []).entries()) {
      const x0 = sx(c * o.xStep);
      out.push(`<rect x="${fmt(x0)}" y="${fmt(y)}" width="${fmt(sx((c + 1) * o.xStep) - x0 + 0.3)}" height="${fmt(rowH)}" fill="${heat(v)}"/>`);
    }
  }
  for (const b of o.outlines) {
    for (const r of b.rows) {
      out.push(
        `<rect x="${fmt(sx(b.from))}" y="${fmt(o.y + top + r * rowH)}" width="${fmt(sx(b.to) - sx(b.from))}" height="${fmt(rowH)}" fill="none" stroke="#000" stroke-width="1.2" stroke-dasharray="3,2"/>`,
      );
    }
  }
  out.push(`<rect x="${o.x + left}" y="${o.y + top}" width="${w}" height="${fmt(rowH * o.rows.length)}" fill="none" stroke="#888"/>`);
  return out.join('\n');
}

/** A colour key for {@link heatmap}: {@link HEAT_LOW} to 1 in `steps` boxes. */
export function heatKey(x: number, y: number, label: string, steps = 10): string {
  const out: string[] = [text(x, y + 9, label, 'font-size="10"')];
  const x0 = x + label.length * 5.6 + 6;
  for (let i = 0; i <= steps; i++) {
    out.push(`<rect x="${x0 + i * 14}" y="${y}" width="14" height="10" fill="${heat(HEAT_LOW + ((1 - HEAT_LOW) * i) / steps)}"/>`);
  }
  out.push(text(x0, y + 20, `≤ ${HEAT_LOW}`, 'font-size="9"'), text(x0 + (steps + 1) * 14, y + 20, '1', 'font-size="9" text-anchor="end"'));
  return out.join('\n');
}

export function svgDocument(width: number, height: number, parts: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
