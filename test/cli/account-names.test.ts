import { join } from 'node:path';
import {
  AccountNamesError,
  accountLabel,
  MAX_ACCOUNT_NAME_LENGTH,
  parseAccountNames,
  readAccountNames,
} from '../../lambda/cli/account-names';
import type { OrgInventoryRow } from '../../lambda/cli/inventory-org';
import { removeTempDirs, tempDir, writeFile } from './helpers';

/**
 * `--account-names FILE` (audit, report): account names from `keyguard inventory --org --json` output or a JSON
 * object. Names are chosen by each member account's administrator: parsed as text, refused when malformed with a
 * message naming the option, file, line, field and value.
 */

afterAll(removeTempDirs);

function row(accountId: string, accountName: string, keyId: string): OrgInventoryRow {
  return {
    accountId,
    accountName,
    userName: 'svc',
    keyId,
    owner: { value: null, source: 'fallback' },
    status: 'Active',
    createdAt: '2026-11-01T00:00:00.000Z',
    expiresAt: null,
    neverExpires: true,
    lastReviewAt: null,
    lastUsedAt: 'unknown',
    violations: [],
    policyVersion: 'p-1',
    policyOverride: null,
  };
}

describe('--account-names', () => {
  it('reads keyguard inventory --org --json output: one name per account, repeated rows agreeing', () => {
    // Prepare
    const text = [
      row('222222222222', 'prod', 'ACCA1'),
      row('222222222222', 'prod', 'ACCA2'),
      row('333333333333', 'sandbox \u202eevil', 'ACCA3'),
      row('444444444444', '', 'ACCA4'),
    ]
      .map((r) => JSON.stringify(r))
      .join('\n');

    // Act
    const names = parseAccountNames(`${text}\n`, 'org.jsonl');

    // Assess
    expect([...names]).toEqual([
      ['222222222222', 'prod'],
      ['333333333333', 'sandbox \u202eevil'],
    ]);
    expect(accountLabel('222222222222', names)).toBe('222222222222 (prod)');
    expect(accountLabel('444444444444', names)).toBe('444444444444');
    expect(accountLabel('222222222222', undefined)).toBe('222222222222');
  });

  it('reads a JSON object of account id to name, on one line or several', () => {
    // Act
    const oneLine = parseAccountNames('{"222222222222":"prod","333333333333":"dev"}', 'names.json');
    const pretty = parseAccountNames('{\n  "222222222222": "prod"\n}\n', 'names.json');

    // Assess
    expect(Object.fromEntries(oneLine)).toEqual({ '222222222222': 'prod', '333333333333': 'dev' });
    expect(Object.fromEntries(pretty)).toEqual({ '222222222222': 'prod' });
  });

  it.each([
    [
      `${JSON.stringify(row('222222222222', 'a', 'K'))}\n{"accountId":"12345","accountName":"x"}`,
      '--account-names f.jsonl: line 2: accountId: got "12345"; allowed: 12 digits',
    ],
    ['{"accountId":"222222222222","accountName":7}', '--account-names f.jsonl: line 1: accountName: got 7'],
    [
      '{"accountId":"222222222222","accountName":"a"}\n{"accountId":"222222222222","accountName":"b"}',
      'line 2: account 222222222222 is named "b", and "a" before',
    ],
    ['{"accountId":"222222222222",\nsecret-ish text', 'line 1: not JSON'],
    ['{"o-a1b2c3d4e5":"x"}', '--account-names f.jsonl: accountId: got "o-a1b2c3d4e5"'],
    [
      `{"222222222222":"${'n'.repeat(MAX_ACCOUNT_NAME_LENGTH + 1)}"}`,
      `${MAX_ACCOUNT_NAME_LENGTH + 1} characters; allowed: at most ${MAX_ACCOUNT_NAME_LENGTH}`,
    ],
    ['[1,2]', 'line 1: not a JSON object'],
    ['{"accountId":"\\u001b[2J","accountName":"x"}', 'accountId: got "\\u001b[2J"'],
  ])('refuses %j naming the file, line, field and value', (text, message) => {
    // Act
    const parse = () => parseAccountNames(text, 'f.jsonl');

    // Assess
    expect(parse).toThrow(AccountNamesError);
    expect(parse).toThrow(message);
  });

  it('does not repeat the text of a line that is not JSON', () => {
    // Act
    let message = '';
    try {
      parseAccountNames('{"accountId": ABSKsecret', 'f.jsonl');
    } catch (err) {
      message = (err as Error).message;
    }

    // Assess
    expect(message).toContain('not JSON');
    expect(message).not.toContain('ABSK');
  });

  it('reads the file relative to cwd; a missing file or a directory is named', () => {
    // Prepare
    const cwd = tempDir();
    writeFile(join(cwd, 'names.json'), '{"222222222222":"prod"}');

    // Act
    const names = readAccountNames('names.json', cwd);

    // Assess
    expect(names?.get('222222222222')).toBe('prod');
    expect(readAccountNames(undefined, cwd)).toBeUndefined();
    expect(() => readAccountNames('missing.json', cwd)).toThrow('--account-names missing.json: cannot read');
    expect(() => readAccountNames('.', cwd)).toThrow('--account-names .: not a regular file');
    expect(() => readAccountNames(' ', cwd)).toThrow('--account-names: must not be empty');
  });
});
