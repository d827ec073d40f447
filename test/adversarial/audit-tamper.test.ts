import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { chainPk } from '../../lambda/adapters/audit-store';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { REPLAY_TABLES } from '../../lambda/cli/replay';
import { LOCK_FILE } from '../../lambda/cli/store-lock';
import { EXAMPLES, REPO, removeTempDirs, tempDir } from '../cli/helpers';

/**
 * Tampering with the decision record (issue 10 item 6), through the real CLI as a process with a time limit:
 * `keyguard replay` of the examples writes a chained store, `keyguard audit verify` proves it intact (exit 0),
 * then each way of rewriting history behind the store's back (an edited field, a deleted decision, a deleted
 * link, an appended decision, a decision moved to another key) is named with exit 1, and the store's lock is
 * released every time.
 */

const BIN = join(REPO, 'bin', 'keyguard.js');
const RUN_LIMIT_MS = 90_000;
const T = REPLAY_TABLES.decisionsTable;

afterAll(removeTempDirs);

function keyguard(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: RUN_LIMIT_MS,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A store replayed from the examples, and its decision items (not links). */
async function replayedStore(): Promise<{ store: string; decisions: Record<string, unknown>[] }> {
  const store = tempDir('keyguard-adv-audit-');
  const r = keyguard(['replay', '--quiet', '--store', store, join(EXAMPLES, 'cloudtrail')]);
  expect(r.stderr).toBe('');
  const db = await startEmbeddedDynamo({ path: store });
  try {
    const res = await db.doc.send(new ScanCommand({ TableName: T }));
    const decisions = (res.Items ?? []).filter((i) => !String(i.pk).startsWith('chain#'));
    return { store, decisions };
  } finally {
    await db.close();
  }
}

async function tamper(
  store: string,
  change: (db: Awaited<ReturnType<typeof startEmbeddedDynamo>>) => Promise<void>,
) {
  const db = await startEmbeddedDynamo({ path: store });
  try {
    await change(db);
  } finally {
    await db.close();
  }
}

function verify(store: string) {
  const r = keyguard(['audit', 'verify', '--store', store]);
  expect(readdirSync(store)).not.toContain(LOCK_FILE);
  return r;
}

describe('keyguard audit verify against a tampered store (real CLI, time-limited)', () => {
  jest.setTimeout(4 * RUN_LIMIT_MS);

  it('a replayed store verifies intact; an edited field is named with its key, seq, decision and field', async () => {
    const { store, decisions } = await replayedStore();
    expect(decisions.length).toBeGreaterThan(0);
    const ok = verify(store);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('Intact');

    const target = decisions[0] as Record<string, unknown>;
    await tamper(store, async (db) => {
      await db.doc.send(
        new PutCommand({ TableName: T, Item: { ...target, action: 'ALLOW', violations: [] } }),
      );
    });
    const bad = verify(store);

    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(
      new RegExp(
        `ALTERED: key ${target.accountId}/${target.keyId} seq \\d+ decision ${String(target.sk).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
      ),
    );
    expect(bad.stdout).toMatch(/changed: [^\n]*(action|violations)/);
  });

  it('a deleted decision, a deleted link and a decision moved to another key are each named', async () => {
    const { store, decisions } = await replayedStore();
    const a = decisions[0] as Record<string, unknown>;
    // A key with at least two decisions: deleting the first link of a one-link chain leaves no chain at all, which
    // only a signed digest can tell from a key recorded before chaining (see docs/commands/audit-verify.md).
    const b = decisions.find((d) => d.pk !== a.pk && decisions.filter((o) => o.pk === d.pk).length >= 2);
    if (!a || !b) throw new Error('the examples should give at least two decisions');
    await tamper(store, async (db) => {
      await db.doc.send(new DeleteCommand({ TableName: T, Key: { pk: a.pk, sk: a.sk } }));
      await db.doc.send(
        new DeleteCommand({
          TableName: T,
          Key: { pk: chainPk(String(b.accountId), String(b.keyId)), sk: '000000000001' },
        }),
      );
      // The same decision, re-filed under an invented key: no chain covers it there.
      await db.doc.send(
        new PutCommand({
          TableName: T,
          Item: { ...b, pk: `${b.accountId}#ACCAMOVEDKEY000000001`, keyId: 'ACCAMOVEDKEY000000001' },
        }),
      );
    });

    const r = verify(store);

    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`MISSING: key ${a.accountId}/${a.keyId}`);
    expect(r.stdout).toContain(`GAP: key ${b.accountId}/${b.keyId} seq 1`);
    // Listed as not covered, never "intact": the moved decision (no chain for the invented key) and b's first one,
    // whose link (which sealed the legacy set) is gone.
    expect(r.stdout).toContain('Legacy, not covered: 2 decision(s) of 2 key(s)');
    expect(r.stdout).toContain('NOT INTACT: 2 problem(s)');
  });

  it('never hangs or crashes on a store whose chain items are garbage: exit 1 or 2 with a message', async () => {
    const { store, decisions } = await replayedStore();
    const d = decisions[0] as Record<string, unknown>;
    await tamper(store, async (db) => {
      await db.doc.send(
        new PutCommand({
          TableName: T,
          Item: {
            pk: chainPk(String(d.accountId), String(d.keyId)),
            sk: '000000000099',
            seq: 'x',
            hash: 7,
            fields: 'nope',
          },
        }),
      );
    });

    const r = verify(store);

    expect([1, 2]).toContain(r.status);
    expect(r.stdout + r.stderr).toMatch(/GAP|LINK-ALTERED|MISSING|could not/);
  });
});
