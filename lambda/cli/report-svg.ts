import { visible } from '../shared/visible-text';
import { ACTIONS, type AccountBar, type Bar, type DayBar } from './report-data';

/**
 * Inline SVG charts for `keyguard report`, drawn on the server: no chart library, no script, no font or image
 * to fetch, so the report opens offline and under a `default-src 'none'` policy. Every chart carries a
 * <title> and <desc> (read by screen readers through aria-labelledby) and every bar its value as a data
 * attribute and a tooltip.
 */

/** Escapes markup characters only (`& < > " '`). */
export function escapeMarkup(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/**
 * Escapes text for HTML and SVG content and attribute values. Control, bidi and invisible characters are shown
 * as escapes (`\n`, `\u202e`, see shared/visible-text.ts): a bidi override in an owner tag would otherwise reorder
 * what the page shows, and a name would read as another.
 */
export function escapeHtml(value: string): string {
  return escapeMarkup(visible(value));
}

export const ACTION_COLORS: Record<(typeof ACTIONS)[number], string> = {
  ALLOW: '#2e7d32',
  NOTIFY: '#b26a00',
  DEACTIVATE: '#c62828',
  DELETE: '#6a1b9a',
};
const BAR_COLOR = '#1565c0';
const TEXT_COLOR = '#1f2328';

export interface ChartText {
  /** Unique in the page: ids of the chart's title and description derive from it. */
  id: string;
  title: string;
  desc: string;
}

/** Long labels (owner ARNs) are shortened on the chart; the full label stays in the bar's tooltip. */
function shorten(label: string, max = 30): string {
  return label.length <= max ? label : `${label.slice(0, max - 1)}…`;
}

function svgOpen(c: ChartText, width: number, height: number): string {
  return (
    `<svg role="img" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" aria-labelledby="${c.id}-title ${c.id}-desc">` +
    `<title id="${c.id}-title">${escapeHtml(c.title)}</title><desc id="${c.id}-desc">${escapeHtml(c.desc)}</desc>`
  );
}

/** Horizontal bars, one per label, scaled to the largest value. */
export function barChart(c: ChartText, bars: readonly Bar[], color = BAR_COLOR): string {
  const labelWidth = 220;
  const plotWidth = 380;
  const row = 24;
  const width = labelWidth + plotWidth + 60;
  const height = Math.max(1, bars.length) * row + 8;
  const max = bars.reduce((m, b) => Math.max(m, b.value), 1);
  const parts = [svgOpen(c, width, height)];
  bars.forEach((b, i) => {
    const y = 4 + i * row;
    const w = Math.round((b.value / max) * plotWidth * 10) / 10;
    const label = escapeHtml(b.label);
    parts.push(
      `<g class="bar" data-label="${label}" data-value="${b.value}"><title>${label}: ${b.value}</title>` +
        `<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end" fill="${TEXT_COLOR}">${escapeHtml(shorten(b.label))}</text>` +
        `<rect x="${labelWidth}" y="${y + 3}" width="${w}" height="${row - 6}" fill="${color}" data-value="${b.value}"></rect>` +
        `<text x="${labelWidth + w + 6}" y="${y + 16}" fill="${TEXT_COLOR}">${b.value}</text></g>`,
    );
  });
  if (bars.length === 0) {
    parts.push(`<text x="8" y="20" fill="${TEXT_COLOR}">nothing to show</text>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

/** Vertical bars per day, stacked by action (bottom to top in ACTIONS order), with a legend. */
export function stackedDayChart(c: ChartText, days: readonly DayBar[]): string {
  const left = 40;
  const plotHeight = 180;
  const top = 30;
  const step = days.length > 60 ? 4 : days.length > 20 ? 12 : 40;
  const width = Math.max(480, left + days.length * step + 20);
  const height = top + plotHeight + 40;
  const max = days.reduce((m, d) => Math.max(m, d.total), 1);
  const parts = [svgOpen(c, width, height)];
  ACTIONS.forEach((a, i) => {
    const x = left + i * 110;
    parts.push(
      `<g class="legend"><rect x="${x}" y="6" width="12" height="12" fill="${ACTION_COLORS[a]}"></rect>` +
        `<text x="${x + 16}" y="16" fill="${TEXT_COLOR}">${a}</text></g>`,
    );
  });
  parts.push(
    `<line x1="${left}" y1="${top + plotHeight}" x2="${width - 10}" y2="${top + plotHeight}" stroke="${TEXT_COLOR}"></line>`,
    `<text x="${left - 6}" y="${top + 10}" text-anchor="end" fill="${TEXT_COLOR}">${max}</text>`,
    `<text x="${left - 6}" y="${top + plotHeight}" text-anchor="end" fill="${TEXT_COLOR}">0</text>`,
  );
  const labelEvery = Math.max(1, Math.ceil(days.length / 8));
  days.forEach((d, i) => {
    const x = left + i * step + 2;
    const barWidth = Math.max(2, step - 4);
    const tip = `${d.day}: ${d.total} (${ACTIONS.map((a) => `${a} ${d.byAction[a]}`).join(', ')})`;
    const segs: string[] = [];
    let y = top + plotHeight;
    for (const a of ACTIONS) {
      const n = d.byAction[a];
      if (n === 0) continue;
      const h = Math.round((n / max) * plotHeight * 10) / 10;
      y -= h;
      segs.push(
        `<rect class="seg" x="${x}" y="${Math.round(y * 10) / 10}" width="${barWidth}" height="${h}" ` +
          `fill="${ACTION_COLORS[a]}" data-action="${a}" data-value="${n}"></rect>`,
      );
    }
    const label =
      i % labelEvery === 0 || i === days.length - 1
        ? `<text x="${x + barWidth / 2}" y="${top + plotHeight + 16}" text-anchor="middle" fill="${TEXT_COLOR}" font-size="10">${d.day.slice(5)}</text>`
        : '';
    parts.push(
      `<g class="day" data-day="${d.day}" data-total="${d.total}"><title>${tip}</title>${segs.join('')}${label}</g>`,
    );
  });
  if (days.length === 0)
    parts.push(`<text x="${left}" y="${top + 20}" fill="${TEXT_COLOR}">no decisions</text>`);
  parts.push('</svg>');
  return parts.join('');
}

/** The three numbers of an account's group of bars, in drawing order, with their colours and legend names. */
export const ACCOUNT_METRICS = [
  { metric: 'keys', legend: 'keys', color: BAR_COLOR },
  { metric: 'withViolations', legend: 'keys with violations', color: ACTION_COLORS.DEACTIVATE },
  { metric: 'decisions', legend: 'decisions', color: '#607d8b' },
] as const;

/** `111122223333 (prod)`, or the id alone when no name is known (not escaped: callers escape). */
export function shownAccount(a: { accountId: string; accountName: string | null }): string {
  return a.accountName ? `${a.accountId} (${a.accountName})` : a.accountId;
}

/**
 * Horizontal bars grouped per account: keys, keys with violations and decisions, each metric scaled to its own
 * largest value (decisions outnumber keys), with a legend. The account id is escaped like any label.
 */
export function accountChart(c: ChartText, accounts: readonly AccountBar[]): string {
  const labelWidth = 220;
  const plotWidth = 380;
  const bar = 12;
  const row = ACCOUNT_METRICS.length * bar + 12;
  const top = 26;
  const width = labelWidth + plotWidth + 60;
  const height = top + Math.max(1, accounts.length) * row + 4;
  const max = Object.fromEntries(
    ACCOUNT_METRICS.map(({ metric }) => [metric, accounts.reduce((m, a) => Math.max(m, a[metric]), 1)]),
  ) as Record<(typeof ACCOUNT_METRICS)[number]['metric'], number>;
  const parts = [svgOpen(c, width, height)];
  ACCOUNT_METRICS.forEach((m, i) => {
    const x = labelWidth + i * 150;
    parts.push(
      `<g class="legend"><rect x="${x}" y="6" width="12" height="12" fill="${m.color}"></rect>` +
        `<text x="${x + 16}" y="16" fill="${TEXT_COLOR}">${m.legend}</text></g>`,
    );
  });
  accounts.forEach((a, i) => {
    const y = top + i * row;
    const label = escapeHtml(shownAccount(a));
    const tip = `${label}: ${a.keys} keys, ${a.withViolations} with violations, ${a.decisions} decisions`;
    const bars = ACCOUNT_METRICS.map((m, j) => {
      const value = a[m.metric];
      const w = Math.round((value / max[m.metric]) * plotWidth * 10) / 10;
      const by = y + 2 + j * bar;
      return (
        `<rect x="${labelWidth}" y="${by}" width="${w}" height="${bar - 1}" fill="${m.color}" ` +
        `data-metric="${m.metric}" data-value="${value}"></rect>` +
        `<text x="${labelWidth + w + 6}" y="${by + bar - 1}" fill="${TEXT_COLOR}" font-size="10">${value}</text>`
      );
    }).join('');
    parts.push(
      `<g class="account" data-label="${label}" data-keys="${a.keys}" data-violations="${a.withViolations}" ` +
        `data-decisions="${a.decisions}"><title>${tip}</title>` +
        `<text x="${labelWidth - 8}" y="${y + row / 2 + 3}" text-anchor="end" fill="${TEXT_COLOR}">${escapeHtml(shorten(shownAccount(a)))}</text>` +
        `${bars}</g>`,
    );
  });
  if (accounts.length === 0) {
    parts.push(`<text x="8" y="${top + 14}" fill="${TEXT_COLOR}">nothing to show</text>`);
  }
  parts.push('</svg>');
  return parts.join('');
}
