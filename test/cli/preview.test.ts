import { join } from 'node:path';
import { SNSClient } from '@aws-sdk/client-sns';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import type { PreviewChange } from '../../lambda/cli/preview';
import { runPreview } from '../../lambda/cli/preview';
import { REPLAY_TABLES, runReplay } from '../../lambda/cli/replay';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { publishedPolicy } from '../../lambda/shared/effective-policy';
import { ACCOUNT, captureIO, EXAMPLES, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

/**
 * `keyguard preview` (issue 14): over a store filled by replaying examples/cloudtrail under an audit-mode policy,
 * what an enforce-mode policy that forbids long-term keys would change, and the reverse.
 */

afterAll(removeTempDirs);

const AT = '2026-11-21T00:00:00Z';
/** Deps that fail the test if a deployed table is touched. */
const NO_AWS = {
  doc: () => {
    throw new Error('a deployed table was read');
  },
  env: {},
};

let store: string;
let cwd: string;
let current: string;
let strict: string;

beforeAll(async () => {
  cwd = tempDir();
  store = join(cwd, 'store');
  current = writeFile(join(cwd, 'current.json'), JSON.stringify({ mode: 'audit' }));
  strict = writeFile(join(cwd, 'strict.json'), JSON.stringify({ mode: 'enforce', allowLongTermKeys: false }));
  const out = captureIO(cwd);
  expect(await runReplay([join(EXAMPLES, 'cloudtrail')], { store, json: true }, out.io)).toBe(0);
});

async function allItems(path: string): Promise<Record<string, unknown[]>> {
  const db = await startEmbeddedDynamo({ path });
  try {
    const out: Record<string, unknown[]> = {};
    for (const table of Object.values(REPLAY_TABLES)) {
      const res = await db.doc.send(new ScanCommand({ TableName: table }));
      out[table] = res.Items ?? [];
    }
    return out;
  } finally {
    await db.close();
  }
}

describe('keyguard preview over the local store', () => {
  it('groups the keys whose action changes, counts them per owner and account, and writes nothing', async () => {
    // Prepare
    const items = await allItems(store);
    const spy = jest.spyOn(DynamoDBDocumentClient.prototype, 'send');
    const sns = jest.spyOn(SNSClient.prototype, 'send');
    const out = captureIO(cwd);

    // Act
    const code = await runPreview({ config: strict, current, store, at: AT }, out.io, NO_AWS);

    // Assess
    const commands = spy.mock.calls.map((c) => (c[0] as object).constructor.name);
    spy.mockRestore();
    sns.mockRestore();
    expect(code).toBe(0);
    expect(out.stderr()).toBe('');
    const text = out.stdout();
    expect(text).toContain('Preview (read-only: nothing written, nobody notified) of store');
    expect(text).toContain('Keys: 6 known, 5 evaluated, 5 would change');
    expect(text).toMatch(/^Would be deactivated \(4\):$/m);
    expect(text).toMatch(
      /^111122223333\s+svc-chatbot\s+ACCA\w+\s+alice@example\.com\s+ALLOW\s+DEACTIVATE \(applied\)\s+-\s+LONG_TERM_NOT_ALLOWED$/m,
    );
    expect(text).toMatch(
      /^111122223333\s+svc-analytics\s+ACCA\w+\s+dana@example\.com\s+NOTIFY\s+DEACTIVATE \(applied\)\s+EXCEEDS_MAX_AGE,MISSING_REVIEW_CADENCE\s+EXCEEDS_MAX_AGE,LONG_TERM_NOT_ALLOWED,MISSING_REVIEW_CADENCE$/m,
    );
    expect(text).toContain('alice@example.com (would be deactivated 2)');
    expect(text).toContain(`By account: ${ACCOUNT} (would be deactivated 4, other changes 1)`);
    // Read-only: only reads were sent, nothing was published, and every table holds exactly what it held (the files
    // themselves are not compared: LevelDB rotates its log and manifest whenever a store is opened, even to read).
    expect(commands.length).toBeGreaterThan(0);
    expect(new Set(commands)).toEqual(new Set(['ScanCommand', 'GetCommand']));
    expect(sns).not.toHaveBeenCalled();
    expect(await allItems(store)).toEqual(items);
  });

  it('the reverse change: keys no longer flagged, in JSON with the counts and both policies', async () => {
    // Act
    const out = captureIO(cwd);
    const code = await runPreview(
      { config: current, current: strict, store, at: AT, json: true },
      out.io,
      NO_AWS,
    );

    // Assess
    expect(code).toBe(0);
    const r = JSON.parse(out.stdout()) as {
      current: { config: string };
      new: { config: string };
      keys: { known: number; evaluated: number; changed: number };
      changes: PreviewChange[];
      byOwner: Record<string, Record<string, number>>;
      byAccount: Record<string, Record<string, number>>;
      written: boolean;
    };
    expect(r.current.config).toBe(strict);
    expect(r.new.config).toBe(current);
    expect(r.keys).toEqual({
      known: 6,
      evaluated: 5,
      changed: 5,
      skipped: { deleted: 1, noDecision: 0, approved: 0, notRebuilt: 0 },
    });
    const gone = r.changes.filter((c) => c.group === 'no longer flagged');
    expect(gone.map((c) => c.userName).sort()).toEqual(['svc-chatbot', 'svc-chatbot', 'svc-rag-indexer']);
    for (const c of gone) {
      expect(c.current).toMatchObject({
        action: 'DEACTIVATE',
        mode: 'enforce',
        violations: ['LONG_TERM_NOT_ALLOWED'],
      });
      expect(c.next).toMatchObject({ action: 'ALLOW', mode: 'audit', violations: [] });
    }
    expect(r.byOwner['alice@example.com']).toEqual({ 'no longer flagged': 2 });
    expect(r.byAccount[ACCOUNT]).toEqual({ 'other changes': 2, 'no longer flagged': 3 });
    expect(r.written).toBe(false);
  });

  it('the same policy twice: no key would change', async () => {
    const out = captureIO(cwd);
    expect(await runPreview({ config: current, current, store, at: AT }, out.io, NO_AWS)).toBe(0);
    expect(out.stdout()).toContain('Keys: 6 known, 5 evaluated, 0 would change');
    expect(out.stdout()).toContain('No key would change.');
  });

  it('organization overrides: an account override applies, an OU override cannot and says so', async () => {
    // Prepare
    const org = {
      mode: 'audit',
      organization: { id: 'o-a1b2c3d4e5', managementAccountId: '999999999999', targets: ['r-ab12'] },
      overrides: [
        { accounts: [ACCOUNT], mode: 'enforce', allowLongTermKeys: false },
        { ous: ['ou-ab12-sandbox1'], maxAgeDays: 7 },
      ],
    };
    const config = writeFile(join(cwd, 'org.json'), JSON.stringify(org));
    const out = captureIO(cwd);

    // Act
    const code = await runPreview({ config, current, store, at: AT }, out.io, NO_AWS);

    // Assess
    expect(code).toBe(0);
    expect(out.stdout()).toMatch(/DEACTIVATE \(applied\) \[account:111122223333\]/);
    expect(out.stdout()).toContain('Keys: 6 known, 5 evaluated, 5 would change');
    expect(out.stdout()).toContain(
      `Note: OU overrides not applied: the OU path of 1 account(s) (${ACCOUNT}) is not known to the store`,
    );
  });

  it('--ou-path gives an account its OUs: an OU override then applies to it, and no note is printed', async () => {
    // Prepare
    const org = {
      mode: 'audit',
      organization: { id: 'o-a1b2c3d4e5', managementAccountId: '999999999999', targets: ['r-ab12'] },
      overrides: [{ ous: ['ou-ab12-sandbox1'], mode: 'enforce', allowLongTermKeys: false }],
    };
    const config = writeFile(join(cwd, 'org-ou.json'), JSON.stringify(org));
    const known = captureIO(cwd);
    const unknown = captureIO(cwd);
    const bad = captureIO(cwd);

    // Act
    await runPreview(
      { config, current, store, at: AT, ouPath: [`${ACCOUNT}=ou-ab12-prod0001/ou-ab12-sandbox1`] },
      known.io,
      NO_AWS,
    );
    await runPreview({ config, current, store, at: AT }, unknown.io, NO_AWS);
    const code = await runPreview({ config, current, store, ouPath: [`${ACCOUNT}=sandbox`] }, bad.io, NO_AWS);

    // Assess
    expect(known.stdout()).toMatch(/DEACTIVATE \(applied\) \[ou:ou-ab12-sandbox1\]/);
    expect(known.stdout()).toMatch(/^Would be deactivated \(4\):$/m);
    expect(known.stdout()).not.toContain('OU overrides not applied');
    expect(unknown.stdout()).toContain('Keys: 6 known, 5 evaluated, 0 would change');
    expect(unknown.stdout()).toContain('Note: OU overrides not applied');
    expect(code).toBe(2);
    expect(bad.stderr()).toContain(`--ou-path: "${ACCOUNT}=sandbox" is not ACCOUNT=OU[/OU...]`);
  });

  it('refuses a missing new config, naming the file, and a store that does not exist', async () => {
    const a = captureIO(cwd);
    expect(await runPreview({ config: 'nope.json', store }, a.io, NO_AWS)).toBe(2);
    expect(a.stderr()).toContain('nope.json: config file not found');
    const b = captureIO(cwd);
    expect(await runPreview({ config: strict, store: join(cwd, 'none') }, b.io, NO_AWS)).toBe(2);
    expect(b.stderr()).toContain('no audit store at');
    const c = captureIO(cwd);
    expect(await runPreview({ config: strict, store, at: 'soon' }, c.io, NO_AWS)).toBe(2);
    expect(c.stderr()).toContain('--at: got "soon"');
  });
});

describe('keyguard preview --table (dynalite standing in for the deployed tables)', () => {
  it('reads the keys and decisions tables and previews the same changes', async () => {
    // Prepare
    const db = await startEmbeddedDynamo({ path: store });
    try {
      const out = captureIO(cwd);

      // Act
      const code = await runPreview(
        {
          config: strict,
          current,
          table: REPLAY_TABLES.decisionsTable,
          keysTable: REPLAY_TABLES.keysTable,
          at: AT,
        },
        out.io,
        { doc: () => db.doc, env: {} },
      );

      // Assess
      expect(code).toBe(0);
      expect(out.stdout()).toContain(`of table ${REPLAY_TABLES.decisionsTable}`);
      expect(out.stdout()).toMatch(/^Would be deactivated \(4\):$/m);
    } finally {
      await db.close();
    }
  });

  it('--table without a keys table is refused', async () => {
    const out = captureIO(cwd);
    expect(await runPreview({ config: strict, table: REPLAY_TABLES.decisionsTable }, out.io, NO_AWS)).toBe(2);
    expect(out.stderr()).toContain('--keys-table: no table name');
  });
});

describe('keyguard preview on the command line', () => {
  it('passes --config, --current, --store, --at, --ou-path (repeatable) and --json through', async () => {
    // Prepare
    const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');
    const out = captureIO(cwd);

    // Act
    const code = await main(
      [
        'node',
        'keyguard',
        'preview',
        '--config',
        strict,
        '--current',
        current,
        '--store',
        store,
        '--at',
        AT,
        '--ou-path',
        '444455556666=ou-ab12-prod0001',
        '--ou-path',
        `${ACCOUNT}=ou-ab12-prod0001`,
        '--json',
      ],
      out.io,
    );

    // Assess
    expect(code).toBe(0);
    const r = JSON.parse(out.stdout()) as { keys: { changed: number }; at: string; written: boolean };
    expect(r).toMatchObject({ keys: { changed: 5 }, at: '2026-11-21T00:00:00.000Z', written: false });
  });
});

describe('keyguard preview: the deployed policy is the current one', () => {
  const parameter = '/BedrockKeyGuard/effective-policy/standard';
  const deployed = { mode: 'audit' as const };
  const ssm = mockClient(SSMClient);
  afterEach(() => ssm.reset());
  const withSsm = { ...NO_AWS, env: { KEYGUARD_POLICY_PARAMETER: parameter }, ssm: () => new SSMClient({}) };

  it('named by KEYGUARD_POLICY_PARAMETER: current = the deployed policy, named in the output', async () => {
    // Prepare
    ssm
      .on(GetParameterCommand, { Name: parameter })
      .resolves({ Parameter: { Value: publishedPolicy(parseConfig(deployed)).value } });
    const out = captureIO(cwd);
    // Act
    const code = await runPreview({ config: strict, store, at: AT }, out.io, withSsm);
    // Assess
    expect(code).toBe(0);
    expect(out.stderr()).toBe('');
    expect(out.stdout()).toContain(
      `Current policy ${policyVersion(parseConfig(deployed))} (deployed, SSM parameter ${parameter}) -> new policy`,
    );
    // The same changes as with --current naming a file of that policy.
    expect(out.stdout()).toContain('Keys: 6 known, 5 evaluated, 5 would change');
  });

  it('--current FILE wins: the deployed policy is not read', async () => {
    // Act
    const out = captureIO(cwd);
    const code = await runPreview({ config: strict, current: strict, store, at: AT }, out.io, withSsm);
    // Assess
    expect(code).toBe(0);
    expect(out.stdout()).toContain('Keys: 6 known, 5 evaluated, 0 would change');
    expect(ssm.calls()).toHaveLength(0);
  });

  it('a corrupt deployed policy: exit 2 naming the parameter and the field', async () => {
    // Prepare
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: '{"format":1}' } });
    const out = captureIO(cwd);
    // Act
    const code = await runPreview({ config: strict, store, at: AT }, out.io, withSsm);
    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(`SSM parameter ${parameter}: policyVersion: got nothing`);
  });
});
