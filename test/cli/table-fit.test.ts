import stringWidth from 'string-width';
import { renderTable, violationsCell } from '../../lambda/cli/format';
import { type CliIO, guardedIO, terminalOf } from '../../lambda/cli/io';
import { runReplay } from '../../lambda/cli/replay';
import type { Severity, Violation, ViolationCode } from '../../lambda/domain/types';
import { captureIO, REPO, removeTempDirs, tempDir } from './helpers';

/** Issue 14, "Output people can read": tables fit the terminal, colour on a TTY, NO_COLOR honoured. */

const ESC = '\u001b';
const SGR = new RegExp(`${ESC}\\[[\\d;]+m`, 'g');
/** Terminal columns a printed line takes (colour sequences take none). */
const columnsOf = (line: string) => stringWidth(line.replace(SGR, ''));

afterAll(removeTempDirs);

describe('renderTable on a terminal 80 columns wide', () => {
  const header = ['KEY ID', 'ACCOUNT', 'USER', 'ACTION', 'REASON'];
  const keyId = 'ACCAEXAMPLEKEYID1234567';
  const hostile = [
    [
      keyId,
      '111122223333',
      `漢字ユーザー名前${ESC}[2J`.repeat(3),
      'DEACTIVATE (planned)',
      `why ${ESC}]0;t\u0007 `.repeat(8),
    ],
    [
      'ACCAEXAMPLEKEYID7654321',
      '444455556666',
      '😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀',
      'NOTIFY',
      'r\u202e'.repeat(30),
    ],
  ];

  it('fits every line into 80 columns, cutting free text with … and keeping ids whole', () => {
    // Act
    const table = renderTable(header, hostile, { columns: 80, color: false });

    // Assess
    const lines = table.split('\n');
    for (const line of lines) expect(columnsOf(line)).toBeLessThanOrEqual(80);
    expect(lines[1]).toContain(keyId);
    expect(lines[1]).toContain('111122223333');
    expect(lines[2]).toContain('ACCAEXAMPLEKEYID7654321');
    expect(lines[1]).toContain('…');
    // No raw control character, no lone surrogate, no escape cut in half (`\x1` followed by the ellipsis).
    expect(table).not.toMatch(/[\p{Cc}\p{Cs}](?<!\n)/u);
    expect(table).not.toMatch(/\\(x[0-9a-f]?|u[0-9a-f]{0,3})…/);
    // Columns line up in terminal columns: ACTION starts at the same column on every line.
    const actionAt = (line: string) => stringWidth(line.slice(0, line.search(/ACTION|DEACTIVATE|NOTIFY/)));
    expect(new Set(lines.map(actionAt)).size).toBe(1);
  });

  it('colours the ACTION column by severity, and leaves piped output full width and plain', () => {
    // Act
    const coloured = renderTable(header, hostile, { columns: 80, color: true });
    const piped = renderTable(header, hostile);

    // Assess
    expect(coloured).toContain(`${ESC}[31mDEACTIVATE (planned)${ESC}[0m`);
    expect(coloured).toContain(`${ESC}[33mNOTIFY${ESC}[0m`);
    expect(piped).not.toContain(ESC);
    expect(piped).not.toContain('…');
    expect(Math.max(...piped.split('\n').map(columnsOf))).toBeGreaterThan(80);
  });

  it('cuts an id only when the free text alone cannot make room', () => {
    // Act
    const table = renderTable(['KEY ID', 'USER'], [[keyId, 'alice-the-long-user-name']], {
      columns: 20,
      color: false,
    });

    // Assess
    for (const line of table.split('\n')) expect(columnsOf(line)).toBeLessThanOrEqual(20);
    expect(table.split('\n')[1]).toBe('ACCAEXAMP…  alice-t…');
  });
});

describe('renderTable: violation cells coloured by their worst severity', () => {
  const v = (code: ViolationCode, severity: Severity): Violation => ({ code, severity, detail: code });
  const rows = [
    ['ACCA1', 'NOTIFY', violationsCell([v('MISSING_PURPOSE', 'low'), v('NEVER_EXPIRES', 'high')])],
    ['ACCA2', 'DEACTIVATE', violationsCell([v('LEAKED', 'critical')])],
    ['ACCA3', 'NOTIFY', violationsCell([v('MISSING_PURPOSE', 'low')])],
    ['ACCA4', 'NOTIFY', violationsCell([v('REVIEW_OVERDUE', 'medium')])],
    ['ACCA5', 'ALLOW', violationsCell([])],
  ];

  it('colours critical bold red, high red, medium yellow, low cyan, and nothing without violations', () => {
    // Act
    const table = renderTable(['KEY ID', 'ACTION', 'VIOLATIONS'], rows, { columns: 80, color: true });

    // Assess
    const lines = table.split('\n');
    expect(lines[1]).toContain(`${ESC}[31mMISSING_PURPOSE,NEVER_EXPIRES${ESC}[0m`);
    expect(lines[2]).toContain(`${ESC}[1;31mLEAKED${ESC}[0m`);
    expect(lines[3]).toContain(`${ESC}[36mMISSING_PURPOSE${ESC}[0m`);
    expect(lines[4]).toContain(`${ESC}[33mREVIEW_OVERDUE${ESC}[0m`);
    expect(lines[5]).toMatch(/ALLOW\S*\s+-$/);
    expect(lines[5]).not.toContain(`-${ESC}`);
  });

  it('writes the same cells plain without colour (NO_COLOR) and when piped', () => {
    // Act
    const noColour = renderTable(['KEY ID', 'ACTION', 'VIOLATIONS'], rows, { columns: 80, color: false });
    const piped = renderTable(['KEY ID', 'ACTION', 'VIOLATIONS'], rows);

    // Assess
    expect(noColour).not.toContain(ESC);
    expect(piped).not.toContain(ESC);
    expect(piped.split('\n')[2]).toBe('ACCA2   DEACTIVATE  LEAKED');
  });

  it('colours the actions of the NOW and NEW columns of a preview', () => {
    // Act
    const table = renderTable(['KEY ID', 'NOW', 'NEW'], [['ACCA1', 'NOTIFY', 'DEACTIVATE']], {
      columns: 80,
      color: true,
    });

    // Assess
    expect(table).toContain(`${ESC}[33mNOTIFY${ESC}[0m`);
    expect(table).toContain(`${ESC}[31mDEACTIVATE${ESC}[0m`);
  });
});

describe('terminalOf: the facts of a real stream', () => {
  it('gives none for a pipe, width and colour for a TTY, no colour with NO_COLOR or FORCE_COLOR=0', () => {
    expect(terminalOf({ isTTY: false, columns: 80 }, {})).toBeUndefined();
    expect(terminalOf({}, { FORCE_COLOR: '1' })).toBeUndefined();
    expect(terminalOf({ isTTY: true, columns: 100 }, {})).toEqual({ columns: 100, color: true });
    expect(terminalOf({ isTTY: true, columns: 100 }, { NO_COLOR: '1' })).toEqual({
      columns: 100,
      color: false,
    });
    expect(terminalOf({ isTTY: true, columns: 100 }, { NO_COLOR: '' })).toEqual({
      columns: 100,
      color: true,
    });
    expect(terminalOf({ isTTY: true }, { FORCE_COLOR: '0' })).toEqual({ columns: 80, color: false });
  });
});

describe('keyguard replay on a fake terminal (through the CliIO abstraction and its guard)', () => {
  const run = async (terminal?: CliIO['terminal']) => {
    const out = captureIO(REPO);
    const io = guardedIO(terminal ? { ...out.io, terminal } : out.io);
    const code = await runReplay(['examples/cloudtrail'], { store: tempDir() }, io);
    const table = out.stdout().split('\n\n')[0] ?? '';
    return { code, table };
  };

  it('fits the decision table to 80 columns and colours actions; NO_COLOR (color false) and a pipe stay plain', async () => {
    // Act
    const tty = await run({ columns: 80, color: true });
    const noColour = await run(terminalOf({ isTTY: true, columns: 80 }, { NO_COLOR: '1' }));
    const piped = await run();

    // Assess
    expect(tty.code).toBe(0);
    for (const line of tty.table.split('\n')) expect(columnsOf(line)).toBeLessThanOrEqual(80);
    expect(tty.table).toMatch(new RegExp(`${ESC}\\[3[123]m(DEACTIVATE|NOTIFY|ALLOW)`));
    expect(tty.table).not.toContain('\\u001b');
    expect(noColour.table).not.toContain(ESC);
    expect(noColour.table.replace(/\n/g, '')).toBe(tty.table.replace(SGR, '').replace(/\n/g, ''));
    expect(piped.table).not.toContain(ESC);
    expect(Math.max(...piped.table.split('\n').map(columnsOf))).toBeGreaterThan(80);
  });
});
