/**
 * Statistics and the plain-text tables every benchmark prints. Figures go to stdout; progress goes to
 * stderr (see `progress`), so `npm run bench > figures.txt` keeps only the tables.
 */

export interface Figure {
  metric: string;
  value: string;
  unit: string;
  detail?: string;
}

export interface Section {
  title: string;
  figures: Figure[];
  /** Context a reader needs to interpret the figures (method, caveats). */
  notes: string[];
  /** Further tables (already rendered, see `renderTable`), printed between the figures and the notes. */
  tables?: string[];
}

export interface Summary {
  median: number;
  p90: number;
  min: number;
  max: number;
  n: number;
}

/** Nearest-rank percentile of an ascending-sorted list. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of an empty sample');
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >>> 1;
  const median =
    sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return {
    median,
    p90: percentile(sorted, 90),
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
    n: sorted.length,
  };
}

/** Formats with thousands separators and a fixed number of decimals. */
export function num(value: number, decimals = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function mib(bytes: number): number {
  return bytes / (1024 * 1024);
}

export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

function pad(text: string, width: number, right: boolean): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** Renders one section as an aligned table, with its notes underneath. */
export function renderSection(section: Section): string {
  const header = ['metric', 'value', 'unit', 'detail'];
  const rows = section.figures.map((f) => [f.metric, f.value, f.unit, f.detail ?? '']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => pad(c, widths[i] as number, i === 1))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const out = [`== ${section.title} ==`, line(header), rule, ...rows.map(line)];
  for (const table of section.tables ?? []) out.push('', table);
  for (const note of section.notes) out.push(`  * ${note}`);
  return out.join('\n');
}

/** An aligned plain-text table with a title line; columns after the first are right-aligned. */
export function renderTable(
  title: string,
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => pad(c, widths[i] as number, i > 0))
      .join('  ')
      .trimEnd();
  return [
    `-- ${title} --`,
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
  ].join('\n');
}
