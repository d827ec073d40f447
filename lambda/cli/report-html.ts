import { createHash } from 'node:crypto';
import { mapVisible } from '../shared/visible-text';
import {
  type AccountBar,
  type Bar,
  chartedAccounts,
  LIFETIME_UNKNOWN,
  MAX_ACCOUNT_BARS,
  MAX_DAYS,
  type ReportData,
  type ReportKey,
} from './report-data';
import {
  ACCOUNT_METRICS,
  ACTION_COLORS,
  accountChart,
  barChart,
  escapeHtml,
  escapeMarkup,
  shownAccount,
  stackedDayChart,
} from './report-svg';

/**
 * The HTML of `keyguard report`: one self-contained file. Styles, charts (inline SVG) and the small table
 * sorter are inline; a Content-Security-Policy of `default-src 'none'` with hashes for the one style and the
 * one script makes the browser refuse anything else, so the file never reaches the network, even if a value
 * in it were crafted to try (every value is escaped as well).
 *
 * The inventory fits a laptop screen (1366 px) without scrolling the page sideways: identifiers and violation
 * codes wrap between words (a code or an ID stays whole), free text (user names, owner ARNs) wraps anywhere, so
 * every value is shown in full rather than cut. Only a table too wide for its screen even so scrolls inside its
 * own box, never the page.
 */

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:0 auto;max-width:1320px;padding:16px 24px}
h1{font-size:1.6em;margin:.2em 0}
h2{font-size:1.2em;margin:1.6em 0 .4em}
.summary{color:#444}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:8px 24px}
figure{margin:0}
figcaption{color:#444;font-size:.9em;margin:.2em 0}
svg{max-width:100%;height:auto;font-size:12px}
details{font-size:.9em}
table{border-collapse:collapse}
table.counts td,table.counts th{padding:1px 8px;text-align:left}
#inventory{width:100%;font-size:.92em}
#inventory th,#inventory td{border-bottom:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}
#inventory td{overflow-wrap:anywhere}
#inventory td.word{overflow-wrap:break-word}
#inventory td.free{min-width:9em}
.table-wrap{overflow-x:auto;max-width:100%}
#inventory th button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer;color:inherit}
#inventory th[aria-sort=ascending] button::after{content:" \\25B2"}
#inventory th[aria-sort=descending] button::after{content:" \\25BC"}
.num{text-align:right}
.nowrap{white-space:nowrap}
.bad{color:#a40e26}
.ctl{font-family:ui-monospace,monospace;color:#a40e26;background:#ffebe9;border-radius:2px;padding:0 1px}
.filter{margin:.4em 0}
.filter select{font:inherit;max-width:40em}
`;

/**
 * Sorts the inventory by a clicked header: ascending first, then descending. Cells sort by data-sort (ISO dates,
 * numbers); empty values go last either way. aria-sort says the current order.
 */
const SCRIPT = `
(function () {
  var table = document.getElementById('inventory');
  if (!table) return;
  var heads = table.tHead.rows[0].cells;
  function value(row, i) { var c = row.cells[i]; return c.hasAttribute('data-sort') ? c.getAttribute('data-sort') : c.textContent; }
  function sortBy(i) {
    var th = heads[i];
    var dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
    var type = th.getAttribute('data-type');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, i), y = value(b, i);
      if (x === '' || y === '') return x === y ? 0 : x === '' ? 1 : -1;
      var r = type === 'number' ? Number(x) - Number(y) : x < y ? -1 : x > y ? 1 : 0;
      return dir === 'ascending' ? r : -r;
    });
    for (var j = 0; j < heads.length; j++) heads[j].setAttribute('aria-sort', 'none');
    th.setAttribute('aria-sort', dir);
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(heads, function (th, i) {
    var b = th.querySelector('button');
    if (b) b.addEventListener('click', function () { sortBy(i); });
  });
  var filter = document.getElementById('account-filter');
  var shown = document.getElementById('inventory-shown');
  if (!filter || !shown) return;
  function applyFilter() {
    var want = filter.value;
    var rows = table.tBodies[0].rows;
    var n = 0;
    for (var j = 0; j < rows.length; j++) {
      var show = want === '' || rows[j].getAttribute('data-account') === want;
      rows[j].hidden = !show;
      if (show) n++;
    }
    shown.textContent = n + ' of ' + rows.length + ' keys shown';
  }
  filter.addEventListener('change', applyFilter);
  applyFilter();
})();
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/**
 * Element content: escaped, with each control, bidi or invisible character shown as a highlighted escape
 * (`<span class="ctl">\u202e</span>`), so a value cannot reorder or hide what is around it.
 */
function htmlText(value: string): string {
  return mapVisible(value, escapeMarkup, (e) => `<span class="ctl">${escapeMarkup(e)}</span>`);
}

function countsTable(caption: string, bars: readonly Bar[]): string {
  const rows = bars.map((b) => `<tr><th scope="row">${htmlText(b.label)}</th><td>${b.value}</td></tr>`);
  return (
    `<details><summary>${escapeHtml(caption)} as a table</summary><table class="counts">` +
    `<thead><tr><th scope="col">${escapeHtml(caption)}</th><th scope="col">keys</th></tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></details>`
  );
}

/** The per-account chart's numbers as a table (the chart's fallback), one row per charted account. */
function accountCounts(accounts: readonly AccountBar[]): string {
  const rows = accounts.map(
    (a) =>
      `<tr><th scope="row">${htmlText(shownAccount(a))}</th>` +
      ACCOUNT_METRICS.map((m) => `<td>${a[m.metric]}</td>`).join('') +
      '</tr>',
  );
  return (
    '<details><summary>Accounts as a table</summary><table class="counts"><thead><tr><th scope="col">Account</th>' +
    ACCOUNT_METRICS.map((m) => `<th scope="col">${m.legend}</th>`).join('') +
    `</tr></thead><tbody>${rows.join('')}</tbody></table></details>`
  );
}

function figure(id: string, heading: string, caption: string, svg: string, fallback: string): string {
  return (
    `<section aria-labelledby="${id}-h"><h2 id="${id}-h">${escapeHtml(heading)}</h2>` +
    `<figure id="${id}" data-chart="${id}">${svg}<figcaption>${escapeHtml(caption)}</figcaption>${fallback}</figure></section>`
  );
}

function day(iso: string | null): string {
  return iso ? iso.slice(0, 10) : '';
}

interface Column {
  label: string;
  type: 'text' | 'number' | 'date';
  /**
   * `parts`: the text in pieces that each stay on one line (a line may break only between them); their text,
   * joined by spaces, is `text`.
   */
  cell(k: ReportKey): { text: string; sort?: string; className?: string; parts?: string[] };
}

const COLUMNS: Column[] = [
  {
    label: 'Account',
    type: 'text',
    cell: (k) => ({ text: shownAccount(k), sort: shownAccount(k), className: 'word' }),
  },
  { label: 'User', type: 'text', cell: (k) => ({ text: k.userName, className: 'free' }) },
  { label: 'Key ID', type: 'text', cell: (k) => ({ text: k.keyId, className: 'word' }) },
  {
    label: 'Owner',
    type: 'text',
    cell: (k) => ({ text: k.owner ?? '', sort: k.owner ?? '', className: 'free' }),
  },
  { label: 'Status', type: 'text', cell: (k) => ({ text: k.status }) },
  {
    label: 'Created',
    type: 'date',
    cell: (k) => ({ text: day(k.createdAt), sort: k.createdAt ?? '', className: 'nowrap' }),
  },
  {
    label: 'Expires',
    type: 'date',
    // A never-expiring key sorts after every date.
    cell: (k) =>
      k.neverExpires
        ? { text: 'never', sort: '9999-12-31T23:59:59.999Z', className: 'bad' }
        : { text: day(k.expiresAt), sort: k.expiresAt ?? '', className: 'nowrap' },
  },
  {
    label: 'Lifetime (days)',
    type: 'number',
    cell: (k) =>
      k.neverExpires
        ? { text: 'never', sort: String(Number.MAX_SAFE_INTEGER), className: 'num bad' }
        : {
            text: k.lifetimeDays === null ? LIFETIME_UNKNOWN : String(k.lifetimeDays),
            sort: k.lifetimeDays === null ? '' : String(k.lifetimeDays),
            className: 'num',
          },
  },
  {
    label: 'Violations (latest decision)',
    type: 'text',
    cell: (k) => ({
      text: k.codes.length ? k.codes.join(', ') : '-',
      sort: k.codes.join(','),
      className: 'word',
    }),
  },
  {
    label: 'Last action',
    type: 'text',
    cell: (k) => ({ text: k.lastAction ?? '', sort: k.lastAction ?? '', className: 'word' }),
  },
  {
    label: 'Last decision',
    type: 'date',
    cell: (k) => {
      const text = (k.lastDecisionAt ?? '').replace('T', ' ').replace(/\.\d+Z$/, 'Z');
      // Date and time may go on two lines, each whole: the inventory fits a 1366 px screen.
      return { text, sort: k.lastDecisionAt ?? '', parts: text.split(' ') };
    },
  },
];

/**
 * The account filter above the inventory (only for keys of two or more accounts): each option's value is the
 * account's index, which its rows carry as data-account, so no recorded text is ever compared or put in a value.
 */
function accountFilter(accounts: readonly AccountBar[], keys: readonly ReportKey[]): string {
  const count = new Map<string, number>();
  for (const k of keys) count.set(k.accountId, (count.get(k.accountId) ?? 0) + 1);
  // An option holds text only (the parser drops tags in it): the escapes are plain text here.
  const options = accounts
    .filter((a) => count.has(a.accountId))
    .map((a) => {
      const n = count.get(a.accountId) ?? 0;
      return `<option value="${accounts.indexOf(a)}">${escapeHtml(shownAccount(a))} (${n} key${n === 1 ? '' : 's'})</option>`;
    })
    .join('');
  return (
    '<p class="filter"><label for="account-filter">Account</label> <select id="account-filter">' +
    `<option value="">All ${count.size} accounts</option>${options}</select> ` +
    `<span id="inventory-shown" aria-live="polite">${keys.length} of ${keys.length} keys shown</span></p>`
  );
}

function inventoryTable(keys: readonly ReportKey[], accounts: readonly AccountBar[]): string {
  const accountIndex = new Map(accounts.map((a, i) => [a.accountId, i]));
  const head = COLUMNS.map(
    (c) =>
      `<th scope="col" aria-sort="none" data-type="${c.type}"><button type="button">${escapeHtml(c.label)}</button></th>`,
  ).join('');
  const body = keys
    .map((k) => {
      const cells = COLUMNS.map((c) => {
        const v = c.cell(k);
        const sort = v.sort !== undefined ? ` data-sort="${escapeHtml(v.sort)}"` : '';
        const cls = v.className ? ` class="${v.className}"` : '';
        const content = v.parts
          ? v.parts.map((p) => `<span class="nowrap">${htmlText(p)}</span>`).join(' ')
          : htmlText(v.text);
        return `<td${cls}${sort}>${content}</td>`;
      }).join('');
      return `<tr data-key="${escapeHtml(k.keyId)}" data-account="${accountIndex.get(k.accountId) ?? ''}">${cells}</tr>`;
    })
    .join('\n');
  const multi = new Set(keys.map((k) => k.accountId)).size > 1;
  return (
    (multi ? accountFilter(accounts, keys) : '') +
    '<div class="table-wrap"><table id="inventory"><caption>Every key on record, Deleted ones included. Select a column header to sort ' +
    `by it${multi ? ', or an account above to show its keys only' : ''}.</caption><thead><tr>${head}</tr></thead>` +
    `<tbody>\n${body}\n</tbody></table></div>`
  );
}

export interface ReportMeta {
  /** Where the data came from, e.g. `store .keyguard` or `table <name>`. */
  source: string;
}

/** The whole report page. Deterministic: the same data and meta give the same bytes. */
export function renderReportHtml(data: ReportData, meta: ReportMeta): string {
  const withViolations = data.keys.filter((k) => k.status !== 'Deleted' && k.codes.length > 0).length;
  const never = data.keys.filter((k) => k.status !== 'Deleted' && k.neverExpires).length;
  const overdue = data.expiry[0]?.value ?? 0;
  const live = data.liveKeys;

  const lifetime = figure(
    'chart-lifetime',
    'Key lifetime',
    `Lifetime (creation to expiry) of the ${live} keys that exist; ${never} never expire.`,
    barChart(
      {
        id: 'svg-lifetime',
        title: 'Key lifetime distribution',
        desc: data.lifetime.map((b) => `${b.label}: ${b.value}`).join('; '),
      },
      data.lifetime,
    ),
    countsTable('Lifetime', data.lifetime),
  );
  const expiry = figure(
    'chart-expiry',
    'Expiry timeline',
    `Keys by month of expiry (UTC) over the next 12 months; ${overdue} past their expiry date. Keys that never expire are not shown.`,
    barChart(
      {
        id: 'svg-expiry',
        title: 'Expiry timeline',
        desc: data.expiry.map((b) => `${b.label}: ${b.value}`).join('; '),
      },
      data.expiry,
    ),
    countsTable('Expiry month', data.expiry),
  );
  const owners = figure(
    'chart-owners',
    'Keys per owner',
    `${data.owners.length} owner${data.owners.length === 1 ? '' : 's'} of ${live} keys (owner tag, else creator, else the fallback owner).`,
    barChart(
      {
        id: 'svg-owners',
        title: 'Keys per owner',
        desc: data.owners.map((b) => `${b.label}: ${b.value}`).join('; '),
      },
      data.owners,
    ),
    countsTable('Owner', data.owners),
  );
  const violations = figure(
    'chart-violations',
    'Violations by code',
    `Keys whose latest decision has each violation; ${withViolations} of ${live} keys have at least one.`,
    barChart(
      {
        id: 'svg-violations',
        title: 'Violations by code',
        desc: data.violations.length
          ? data.violations.map((b) => `${b.label}: ${b.value}`).join('; ')
          : 'no violations',
      },
      data.violations,
      ACTION_COLORS.DEACTIVATE,
    ),
    countsTable('Violation', data.violations),
  );
  // One account (a single-account deployment, or a report of one member): no per-account chart, the page
  // reads as before; the Account column stays.
  const multiAccount = data.accounts.length > 1;
  const charted = chartedAccounts(data.accounts);
  const accounts = multiAccount
    ? figure(
        'chart-accounts',
        'Keys per account',
        `${data.accounts.length} accounts: existing keys, those with violations, and decisions on record, per account ` +
          '(each measure scaled to its own largest value)' +
          (data.accounts.length > MAX_ACCOUNT_BARS
            ? ` (the ${MAX_ACCOUNT_BARS - 1} with the most keys, the rest summed).`
            : '.'),
        accountChart(
          {
            id: 'svg-accounts',
            title: 'Keys, violations and decisions per account',
            desc: charted
              .map(
                (a) =>
                  `${shownAccount(a)}: ${a.keys} keys, ${a.withViolations} with violations, ${a.decisions} decisions`,
              )
              .join('; '),
          },
          charted,
        ),
        accountCounts(charted),
      )
    : '';
  const first = data.days[0]?.day ?? '';
  const last = data.days[data.days.length - 1]?.day ?? '';
  const dayBars: Bar[] = data.days.map((d) => ({ label: d.day, value: d.total }));
  const decisions = figure(
    'chart-decisions',
    'Decisions over time',
    data.days.length
      ? `${data.decisions} decisions per day (UTC), ${first} to ${last}, stacked by action` +
          (data.daysTruncated ? ` (the last ${MAX_DAYS} days only).` : '.')
      : 'No decisions on record.',
    stackedDayChart(
      {
        id: 'svg-decisions',
        title: 'Decisions over time',
        desc: data.days.length
          ? `Decisions per day from ${first} to ${last}, stacked by action: ${data.days
              .filter((d) => d.total > 0)
              .map((d) => `${d.day}: ${d.total}`)
              .join('; ')}`
          : 'no decisions',
      },
      data.days,
    ),
    countsTable('Day', dayBars).replace('<th scope="col">keys</th>', '<th scope="col">decisions</th>'),
  );

  const csp = `default-src 'none'; style-src ${sha256(STYLE)}; script-src ${sha256(SCRIPT)}; base-uri 'none'; form-action 'none'`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Bedrock API keys report (${escapeHtml(data.generatedAt)})</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>Bedrock API keys</h1>
<p class="summary">Generated ${escapeHtml(data.generatedAt)} from ${htmlText(meta.source)}:
<span id="count-keys">${data.keys.length}</span> keys on record (<span id="count-live">${live}</span> existing, ${never} never expiring, ${withViolations} with violations),
<span id="count-decisions">${data.decisions}</span> decisions${multiAccount ? `, across <span id="count-accounts">${data.accounts.length}</span> accounts` : ''}. No key material is in this report.</p>
</header>
<main>
<div class="charts">
${lifetime}
${expiry}
${owners}
${violations}
${accounts}
</div>
${decisions}
<section aria-labelledby="inventory-h"><h2 id="inventory-h">Key inventory</h2>
${inventoryTable(data.keys, data.accounts)}
</section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
