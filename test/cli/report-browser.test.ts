import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { CliIO } from '../../lambda/cli/io';
import { runReplay } from '../../lambda/cli/replay';
import { runReport } from '../../lambda/cli/report';
import { type Decision, VIOLATION_CODES } from '../../lambda/domain/types';
import { startTestDynamo, TABLES } from '../support/dynamo';
import {
  ACCOUNT,
  captureIO,
  createKeyRecord,
  jsonLines,
  REPO,
  removeTempDirs,
  tempDir,
  writeFile,
} from './helpers';
import { inAccount, MANAGEMENT, MEMBER_A, MEMBER_B, orgArchive } from './org-archive';

/**
 * The report as a browser shows it: Debian's Chromium, headless, through playwright-core. One launch for the
 * file. Chromium is a system package (test/support/ensure-chromium.sh installs it for `npm test`): when it is
 * missing this test fails, it never skips.
 */

const CHROMIUM = process.env.KEYGUARD_CHROMIUM || '/usr/bin/chromium';
const NOW = new Date('2026-11-23T12:00:00.000Z');
const EVIL = '<img src=x onerror=alert(1)>';

interface Rendered {
  url: string;
  page: Page;
  requests: string[];
  consoleErrors: string[];
  dialogs: string[];
}

let browser: Browser;
let replayed: Decision[];
let main: Rendered;
let evilFile: string;
let bidiFile: string;
let orgFile: string;
let mainFile: string;
let wideFile: string;
/** An account id a crafted log file chose (replay takes it from recipientAccountId). */
const HOSTILE_ACCOUNT = '<img src=x onerror=alert(4)>\u202e1111';
/** A member account's name, as its administrator chose it. */
const MEMBER_A_NAME = '<b>prod</b>\u202e';
const MEMBER_A_SHOWN = `${MEMBER_A} (<b>prod</b>\\u202e)`;
const BIDI_KEY = 'ACCAEXAMPLEBIDIKEY001';
/** Reads as "invoice-exe.pdf" where U+202E is obeyed. */
const BIDI_USER = 'invoice-\u202efdp.exe';
const BIDI_OWNER = 'team\u2067@\x1b[2Jevil\u2069';
/** Values as long as real ones get: a 64-character IAM user name (the maximum), an SSO role ARN as owner. */
const WIDE_KEY = 'ACCAEXAMPLEWIDEKEY0001';
const WIDE_USER = 'svc-bedrock-inference-production-eu-west-1-batch-pipeline-runner';
const WIDE_OWNER =
  'arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/' +
  'AWSReservedSSO_PlatformEngineeringAdministrators_0123456789abcdef';
/** A hostile user name with no place to break a line, and markup and a bidi override in it. */
const WIDE_HOSTILE = `${'<script>alert(5)</script>'.repeat(6)}\u202e${'x'.repeat(120)}`;

/** One page for the file (a new page costs seconds on a busy machine); each render records its own events. */
let page: Page;
let current: Omit<Rendered, 'page'> | null = null;

async function render(file: string): Promise<Rendered> {
  const r = { url: pathToFileURL(file).href, requests: [], consoleErrors: [], dialogs: [] };
  current = r;
  await page.goto(r.url, { waitUntil: 'load' });
  return { ...r, page };
}

function listen(p: Page): void {
  p.on('request', (req) => current?.requests.push(req.url()));
  p.on('console', (m) => {
    if (m.type() === 'error') current?.consoleErrors.push(m.text());
  });
  p.on('pageerror', (e) => current?.consoleErrors.push(e.message));
  p.on('dialog', (d) => {
    current?.dialogs.push(d.message());
    void d.dismiss();
  });
}

async function writeReport(
  file: string,
  opts: Parameters<typeof runReport>[0],
  deps: Parameters<typeof runReport>[2],
) {
  const out = captureIO(REPO);
  const code = await runReport({ ...opts, html: file }, out.io as CliIO, deps);
  if (code !== 0) throw new Error(`report failed: ${out.stderr()}`);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} not found: the HTML report test renders the report in Chromium. Install it ` +
        '(sudo apt-get install -y chromium) or set KEYGUARD_CHROMIUM to a Chromium binary.',
    );
  }
  const dir = tempDir();
  const store = join(dir, 'store');
  const replay = captureIO(REPO);
  expect(await runReplay(['examples/cloudtrail'], { json: true, store }, replay.io)).toBe(0);
  replayed = jsonLines(replay.stdout());
  const noAws = {
    doc: () => {
      throw new Error('no AWS in this test');
    },
    env: {},
    now: () => NOW,
  };
  await writeReport(join(dir, 'report.html'), { store }, noAws);

  // A second report, from tables holding a key whose user and owner are HTML.
  const db = await startTestDynamo();
  try {
    const log = new DynamoAuditLog(db.doc, TABLES);
    const base = replayed[0] as Decision;
    await log.recordDecision({ ...base, userName: EVIL, owner: { value: `"><b>owner</b>`, source: 'tag' } });
    await log.putKnownKey({
      accountId: ACCOUNT,
      keyId: base.keyId,
      userName: EVIL,
      status: 'Active',
      createdAt: base.createdAt,
      expiresAt: base.expiresAt,
      creator: null,
      owner: `"><b>owner</b>`,
      lastDecisionId: base.decisionId,
      lastDecisionAt: base.decidedAt,
    });
    await writeReport(
      join(dir, 'evil.html'),
      { table: TABLES.decisionsTable, keysTable: TABLES.keysTable },
      { ...noAws, doc: () => db.doc },
    );

    // A third, adding a key whose user and owner hold bidi overrides and an escape sequence (issue 10, item 5).
    await log.recordDecision({
      ...base,
      decisionId: `${base.decisionId}-bidi`,
      keyId: BIDI_KEY,
      userName: BIDI_USER,
      owner: { value: BIDI_OWNER, source: 'tag' },
    });
    await log.putKnownKey({
      accountId: ACCOUNT,
      keyId: BIDI_KEY,
      userName: BIDI_USER,
      status: 'Active',
      createdAt: base.createdAt,
      expiresAt: base.expiresAt,
      creator: null,
      owner: BIDI_OWNER,
      lastDecisionId: `${base.decisionId}-bidi`,
      lastDecisionAt: base.decidedAt,
    });
    await writeReport(
      join(dir, 'bidi.html'),
      { table: TABLES.decisionsTable, keysTable: TABLES.keysTable },
      { ...noAws, doc: () => db.doc },
    );

    // A fifth, adding keys with long names, an ARN owner and every violation code (issue 14: fits 1366 px).
    const every = VIOLATION_CODES.map((code) => ({ code, severity: 'high' as const, detail: code }));
    for (const [i, user] of [WIDE_USER, WIDE_HOSTILE].entries()) {
      const keyId = `${WIDE_KEY}${i}`;
      await log.recordDecision({
        ...base,
        decisionId: `${base.decisionId}-wide-${i}`,
        keyId,
        userName: user,
        owner: { value: WIDE_OWNER, source: 'tag' },
        violations: every,
      });
      await log.putKnownKey({
        accountId: ACCOUNT,
        keyId,
        userName: user,
        status: 'Active',
        createdAt: base.createdAt,
        expiresAt: base.expiresAt,
        creator: null,
        owner: WIDE_OWNER,
        lastDecisionId: `${base.decisionId}-wide-${i}`,
        lastDecisionAt: base.decidedAt,
      });
    }
    wideFile = join(dir, 'wide.html');
    await writeReport(
      wideFile,
      { table: TABLES.decisionsTable, keysTable: TABLES.keysTable },
      { ...noAws, doc: () => db.doc },
    );
  } finally {
    await db.close();
  }

  // A fourth, from an organization trail (three accounts) and a crafted file naming a hostile account.
  const org = orgArchive();
  writeFile(
    join(org.root, 'crafted.json'),
    JSON.stringify({
      Records: [
        inAccount(
          createKeyRecord('2026-11-05T10:00:00Z', 'svc-x', 'ACCAHOSTILEACCOUNT01', { ageDays: 5 }),
          HOSTILE_ACCOUNT,
        ),
      ],
    }),
  );
  const orgStore = join(dir, 'org-store');
  for (const input of ['org-trail-bucket', 'crafted.json']) {
    expect(await runReplay([input], { store: orgStore, quiet: true, jobs: 1 }, captureIO(org.root).io)).toBe(
      0,
    );
  }
  orgFile = join(dir, 'org.html');
  const names = writeFile(join(dir, 'names.json'), JSON.stringify({ [MEMBER_A]: MEMBER_A_NAME }));
  await writeReport(orgFile, { store: orgStore, accountNames: names }, noAws);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage();
  listen(page);
  mainFile = join(dir, 'report.html');
  main = await render(mainFile);
  evilFile = join(dir, 'evil.html');
  bidiFile = join(dir, 'bidi.html');
});

afterAll(async () => {
  await browser?.close();
  removeTempDirs();
});

/** Each key's latest decision in the replay output: what the report's charts must show. */
function latestPerKey(): Decision[] {
  const latest = new Map<string, Decision>();
  for (const d of [...replayed].sort((a, b) => a.decidedAt.localeCompare(b.decidedAt)))
    latest.set(d.keyId, d);
  return [...latest.values()];
}

async function barValues(page: Page, figure: string): Promise<Array<[string, number]>> {
  return page.$$eval(`#${figure} svg g.bar`, (gs) =>
    gs.map(
      (g) => [g.getAttribute('data-label') ?? '', Number(g.getAttribute('data-value'))] as [string, number],
    ),
  );
}

/** The data-sort values of one inventory column, in the order the page shows the rows. */
async function columnCells(page: Page, label: string): Promise<string[]> {
  const heads = await page.$$eval('#inventory thead th', (ths) =>
    ths.map((t) => (t.textContent ?? '').trim()),
  );
  const i = heads.findIndex((h) => h.startsWith(label));
  expect(i).toBeGreaterThanOrEqual(0);
  return page.$$eval(
    '#inventory tbody tr',
    (rs, col) => rs.map((r) => r.children[col]?.getAttribute('data-sort') ?? ''),
    i,
  );
}

describe('the HTML report in headless Chromium', () => {
  it('loads nothing but its own file, and logs no error', () => {
    // Assess
    expect(main.requests).toEqual([main.url]);
    expect(main.consoleErrors).toEqual([]);
  });

  it('shows every chart, each with a title, a description and a caption', async () => {
    // Act
    const figures = await main.page.$$eval('figure', (fs) =>
      fs.map((f) => ({
        id: f.id,
        svgTitle: f.querySelector('svg > title')?.textContent ?? '',
        svgDesc: f.querySelector('svg > desc')?.textContent ?? '',
        caption: f.querySelector('figcaption')?.textContent ?? '',
      })),
    );

    // Assess
    expect(figures.map((f) => f.id)).toEqual([
      'chart-lifetime',
      'chart-expiry',
      'chart-owners',
      'chart-violations',
      'chart-decisions',
    ]);
    for (const f of figures) {
      await expect(main.page.locator(`#${f.id} svg`).isVisible()).resolves.toBe(true);
      expect(f.svgTitle.length).toBeGreaterThan(0);
      expect(f.svgDesc.length).toBeGreaterThan(0);
      expect(f.caption.length).toBeGreaterThan(0);
    }
    expect(await main.page.title()).toContain('Bedrock API keys report');
  });

  it('draws bars that add up to the keys and decisions on record', async () => {
    // Prepare
    const live = latestPerKey().filter((d) => d.status !== 'Deleted');
    const owners = new Set(live.map((d) => d.owner.value ?? '(no owner)'));
    const codes = new Set(live.flatMap((d) => d.violations.map((v) => v.code)));
    const days = new Set(replayed.map((d) => d.decidedAt.slice(0, 10)));

    // Act
    const lifetime = await barValues(main.page, 'chart-lifetime');
    const expiry = await barValues(main.page, 'chart-expiry');
    const owner = await barValues(main.page, 'chart-owners');
    const violations = await barValues(main.page, 'chart-violations');
    const dayTotals = await main.page.$$eval('#chart-decisions g.day', (gs) =>
      gs.map((g) => Number(g.getAttribute('data-total'))),
    );
    const segments = await main.page.$$eval('#chart-decisions rect.seg', (rs) =>
      rs.map(
        (r) => [r.getAttribute('data-action'), Number(r.getAttribute('data-value'))] as [string, number],
      ),
    );

    // Assess
    const sum = (xs: Array<[string, number]>) => xs.reduce((a, [, n]) => a + n, 0);
    expect(lifetime).toHaveLength(6);
    expect(sum(lifetime)).toBe(live.length);
    expect(Object.fromEntries(lifetime).never).toBe(live.filter((d) => d.neverExpires).length);
    expect(expiry).toHaveLength(14);
    expect(sum(expiry)).toBe(live.filter((d) => !d.neverExpires).length);
    expect(owner.map(([l]) => l).sort()).toEqual([...owners].sort());
    expect(sum(owner)).toBe(live.length);
    expect(violations.map(([l]) => l).sort()).toEqual([...codes].sort());
    expect(dayTotals).toHaveLength(days.size);
    expect(dayTotals.reduce((a, b) => a + b, 0)).toBe(replayed.length);
    for (const action of ['ALLOW', 'NOTIFY', 'DEACTIVATE']) {
      const fromChart = segments.filter(([a]) => a === action).reduce((a, [, n]) => a + n, 0);
      expect(fromChart).toBe(replayed.filter((d) => d.action === action).length);
    }
  });

  it('lists one row per key, sorted by Expires on a click (ascending, then descending)', async () => {
    // Prepare
    const keys = new Set(replayed.map((d) => d.keyId));
    const rows = await main.page.locator('#inventory tbody tr').count();
    const expiresHeader = main.page.locator('#inventory th', { hasText: 'Expires' });
    const before = await columnCells(main.page, 'Expires');

    // Act
    await expiresHeader.locator('button').click();
    const ascending = await columnCells(main.page, 'Expires');
    const ariaAsc = await expiresHeader.getAttribute('aria-sort');
    await expiresHeader.locator('button').click();
    const descending = await columnCells(main.page, 'Expires');
    const ariaDesc = await expiresHeader.getAttribute('aria-sort');

    // Assess
    expect(rows).toBe(keys.size);
    expect(ascending).toEqual([...before].sort());
    expect(ascending).not.toEqual(before);
    expect(ariaAsc).toBe('ascending');
    expect(descending).toEqual([...before].sort().reverse());
    expect(ariaDesc).toBe('descending');
    expect(ascending[ascending.length - 1]).toBe('9999-12-31T23:59:59.999Z');
  });

  // Last: it navigates the page to the second report.
  it('shows a user named like an HTML tag as text: no element is created and no script runs', async () => {
    // Act
    const evil = await render(evilFile);
    const users = await evil.page.$$eval('#inventory tbody tr', (rs) =>
      rs.map((r) => r.cells[1]?.textContent),
    );
    const owners = await evil.page.$$eval('#inventory tbody tr', (rs) =>
      rs.map((r) => r.cells[3]?.textContent),
    );
    const images = await evil.page.locator('img').count();
    const bold = await evil.page.locator('b').count();

    // Assess
    expect(users).toEqual([EVIL]);
    expect(owners).toEqual([`"><b>owner</b>`]);
    expect(images).toBe(0);
    expect(bold).toBe(0);
    expect(evil.dialogs).toEqual([]);
    expect(evil.requests).toEqual([evil.url]);
    expect(evil.consoleErrors).toEqual([]);
  });

  it('shows bidi overrides, isolates and escape characters as visible, highlighted escapes', async () => {
    // Act
    const bidi = await render(bidiFile);
    const row = `#inventory tbody tr[data-key="${BIDI_KEY}"]`;
    const tds = await bidi.page.$$eval(`${row} td`, (cs) => cs.map((c) => c.textContent));
    const cells = [tds[1], tds[3]];
    const marks = await bidi.page.$$eval(`${row} .ctl`, (els) =>
      els.map((e) => ({
        text: e.textContent,
        background: e.ownerDocument.defaultView?.getComputedStyle(e).backgroundColor,
      })),
    );
    const page = (await bidi.page.locator('body').textContent()) ?? '';

    // Assess
    expect(cells).toEqual(['invoice-\\u202efdp.exe', 'team\\u2067@\\x1b[2Jevil\\u2069']);
    expect(marks.map((m) => m.text)).toEqual(['\\u202e', '\\u2067', '\\x1b', '\\u2069']);
    for (const m of marks) expect(m.background).not.toBe('rgba(0, 0, 0, 0)');
    expect(page).not.toMatch(/(?![\n\t])[\u202a-\u202e\u2066-\u2069\p{Cc}]/u);
    expect(bidi.requests).toEqual([bidi.url]);
    expect(bidi.consoleErrors).toEqual([]);
  });

  it('has no account chart or filter for one account', async () => {
    // Act (the examples are one account's)
    const single = await render(mainFile);

    // Assess
    expect(await single.page.locator('#chart-accounts').count()).toBe(0);
    expect(await single.page.locator('#account-filter').count()).toBe(0);
    expect(await single.page.locator('#inventory tbody tr:not([hidden])').count()).toBe(
      new Set(replayed.map((d) => d.keyId)).size,
    );
  });

  it('charts each account and filters the key table by account, also after sorting', async () => {
    // Prepare
    const org = await render(orgFile);
    const visibleAccounts = () =>
      org.page.$$eval('#inventory tbody tr:not([hidden])', (rs) =>
        rs.map((r) => r.cells[0]?.textContent ?? ''),
      );
    const shown = () => org.page.locator('#inventory-shown').textContent();
    const options = await org.page.$$eval('#account-filter option', (os) =>
      os.map((o) => ({ value: o.getAttribute('value') ?? '', text: o.textContent ?? '' })),
    );
    const hostileShown = '<img src=x onerror=alert(4)>\\u202e1111';
    const hostileOption = options.find((o) => o.text.startsWith(hostileShown));

    // Act
    const all = await visibleAccounts();
    const groups = await org.page.$$eval('#chart-accounts g.account', (gs) =>
      gs.map((g) => [g.getAttribute('data-label'), Number(g.getAttribute('data-keys'))]),
    );
    await org.page.selectOption('#account-filter', { label: `${MEMBER_A_SHOWN} (2 keys)` });
    const memberA = await visibleAccounts();
    const memberAShown = await shown();
    await org.page.locator('#inventory th', { hasText: 'Expires' }).locator('button').click();
    const sorted = await visibleAccounts();
    await org.page.selectOption('#account-filter', hostileOption?.value ?? 'missing');
    const hostile = await visibleAccounts();
    await org.page.selectOption('#account-filter', '');
    const again = await visibleAccounts();

    // Assess
    expect(options.map((o) => o.text)).toEqual([
      'All 4 accounts',
      `${MANAGEMENT} (1 key)`,
      `${MEMBER_A_SHOWN} (2 keys)`,
      `${MEMBER_B} (1 key)`,
      `${hostileShown} (1 key)`,
    ]);
    expect(all).toHaveLength(5);
    expect(await org.page.locator('#inventory-shown').count()).toBe(1);
    expect(groups).toEqual([
      [MANAGEMENT, 1],
      [MEMBER_A_SHOWN, 2],
      [MEMBER_B, 1],
      [hostileShown, 1],
    ]);
    expect(memberA).toEqual([MEMBER_A_SHOWN, MEMBER_A_SHOWN]);
    expect(memberAShown).toBe('2 of 5 keys shown');
    expect(sorted).toEqual([MEMBER_A_SHOWN, MEMBER_A_SHOWN]);
    expect(hostile).toEqual([hostileShown]);
    expect(again.sort()).toEqual(all.sort());
    expect(await shown()).toBe('5 of 5 keys shown');
    expect(await org.page.locator('img').count()).toBe(0);
    expect(await org.page.locator('b').count()).toBe(0);
    expect(org.dialogs).toEqual([]);
    expect(org.requests).toEqual([org.url]);
    expect(org.consoleErrors).toEqual([]);
  });

  it('fits a 1366 px wide laptop screen: no page scrolling sideways, every inventory cell in view', async () => {
    // Prepare
    await page.setViewportSize({ width: 1366, height: 768 });
    try {
      for (const file of [wideFile, orgFile, mainFile]) {
        // Act
        const wide = await render(file);
        // document.documentElement is the <html> element.
        const size = {
          page: await wide.page.$eval('html', (html) => html.scrollWidth),
          table: await wide.page.$eval('#inventory', (t) => t.getBoundingClientRect().right),
        };
        const cells = await wide.page.$$eval('#inventory td, #inventory th', (cs) =>
          cs.map((c) => {
            const r = c.getBoundingClientRect();
            return { left: r.left, right: r.right, width: r.width, height: r.height };
          }),
        );
        const hidden = await wide.page.locator('#inventory td:not(:visible)').count();

        // Assess
        expect(size.page).toBeLessThanOrEqual(1366);
        expect(size.table).toBeLessThanOrEqual(1366);
        expect(cells.length).toBeGreaterThan(0);
        for (const c of cells) {
          expect(c.left).toBeGreaterThanOrEqual(0);
          expect(c.right).toBeLessThanOrEqual(1366);
          expect(c.width).toBeGreaterThan(0);
          expect(c.height).toBeGreaterThan(0);
        }
        expect(hidden).toBe(0);
        expect(wide.consoleErrors).toEqual([]);
        expect(wide.dialogs).toEqual([]);
        expect(wide.requests).toEqual([wide.url]);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 720 });
    }
  });

  it('shows long values in full in the inventory: nothing cut, nothing interpreted', async () => {
    // Act
    const wide = await render(wideFile);
    const rows = await wide.page.$$eval('#inventory tbody tr[data-key^="ACCAEXAMPLEWIDEKEY"]', (rs) =>
      rs.map((r) => Array.from({ length: r.cells.length }, (_, i) => r.cells[i]?.textContent ?? '')),
    );

    // Assess
    expect(rows.map((r) => r[1]).sort()).toEqual(
      [WIDE_USER, WIDE_HOSTILE.replace('\u202e', '\\u202e')].sort(),
    );
    for (const r of rows) {
      expect(r[3]).toBe(WIDE_OWNER);
      expect(r[8]?.split(', ').sort()).toEqual([...VIOLATION_CODES].sort());
    }
    expect(await wide.page.locator('script').count()).toBe(1);
  });
});
