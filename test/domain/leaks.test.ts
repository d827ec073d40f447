import { createHash } from 'node:crypto';
import { findLeaks, type LeakFinding, MAX_KEY_BODY } from '../../lambda/domain/leaks';
import { fingerprint, redactedForm } from '../../lambda/shared/redact';
import {
  generatedShortTermKey,
  handBuiltLongTermKey,
  handBuiltShortTermKey,
} from '../support/bedrock-tokens';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';

const SIGNED_AT = '2026-11-20T09:31:02Z';
const NOW = new Date('2026-11-20T09:41:02Z');

/**
 * A console-shaped long-term key whose base64 holds `+`, `/` and padding, so that every escape is exercised
 * (base64 of ASCII has `+` and `/` only for bytes ending in 0b11111x, e.g. `~` and `?`).
 */
function escapeRichLongTermKey(): string {
  for (let i = 0; i < 300; i += 1) {
    const secret = `~?~?~?${'K7pQ'.repeat(14)}`.slice(0, 60);
    const key = handBuiltLongTermKey(`BedrockAPIKey-${String(i).padStart(4, '0')}`, '111122223333', secret);
    if (key.includes('+') && key.includes('/') && key.endsWith('=')) return key;
  }
  throw new Error('no escape-rich key');
}

const jsonSlash = (k: string) => k.replace(/\//g, '\\/');

/** A key in a context: the text around it and how the key itself is written there. */
interface Context {
  name: string;
  before: string;
  written: (key: string) => string;
  after: string;
}

const CONTEXTS: Context[] = [
  { name: 'plain text', before: 'the key is ', written: (k) => k, after: ' (do not share)\n' },
  { name: 'alone in the file', before: '', written: (k) => k, after: '' },
  { name: 'second line, CRLF', before: 'first line\r\n', written: (k) => k, after: '\r\nthird\r\n' },
  {
    name: 'JSON string',
    before: '{\n  "apiKey": "',
    written: (k) => k,
    after: '",\n  "region": "us-east-1"\n}\n',
  },
  {
    name: 'JSON string with \\/ escapes inside the key',
    before: '{"config":{"token":"',
    written: jsonSlash,
    after: '"}}',
  },
  {
    name: 'JSON string with \\u002B/\\u002F/\\u003D escapes inside the key',
    before: '{"token":"',
    written: (k) => k.replace(/\+/g, '\\u002B').replace(/\//g, '\\u002f').replace(/=/g, '\\u003D'),
    after: '"}',
  },
  {
    name: 'JSON log message with escaped \\n around the key',
    before: '{"level":"info","msg":"headers:\\nAuthorization: Bearer ',
    written: jsonSlash,
    after: '\\nHost: bedrock-runtime.us-east-1.amazonaws.com"}\n',
  },
  {
    name: 'JSON string with escaped \\" around the key',
    before: '{"msg":"export KEY=\\"',
    written: (k) => k,
    after: '\\" done"}',
  },
  {
    name: 'JSON string with the key wrapped by an escaped \\n inside it',
    before: '{"note":"',
    written: (k) => `${k.slice(0, 61)}\\n${k.slice(61)}`,
    after: '"}',
  },
  {
    name: 'JSON log line inside a JSON log record (Docker json-file), escapes doubled',
    before: '{"log":"{\\"level\\":\\"info\\",\\"token\\":\\"',
    written: (k) => k.replace(/\//g, '\\\\\\/').replace(/\+/g, '\\\\u002B'),
    after: '\\"}\\n","stream":"stdout","time":"2026-11-20T09:31:02Z"}\n',
  },
  {
    name: 'URL-encoded query parameter',
    before: 'GET https://proxy.example.com/forward?token=',
    written: encodeURIComponent,
    after: '&next=1 HTTP/1.1\n',
  },
  {
    name: 'URL-encoded in lower case',
    before: 'redirect=/cb?k=',
    written: (k) => encodeURIComponent(k).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    after: '\n',
  },
  { name: 'YAML plain scalar', before: 'bedrock:\n  api_key: ', written: (k) => k, after: '\n  region: x\n' },
  {
    name: 'YAML quoted scalar',
    before: 'env:\n  - name: KEY\n    value: "',
    written: (k) => k,
    after: '"\n',
  },
  {
    name: '.env file',
    before: '# local only\nAWS_BEARER_TOKEN_BEDROCK=',
    written: (k) => k,
    after: '\nDEBUG=1\n',
  },
  {
    name: 'shell single quotes',
    before: "export AWS_BEARER_TOKEN_BEDROCK='",
    written: (k) => k,
    after: "'\n",
  },
  {
    name: 'shell double quotes in a curl header',
    before: 'curl -s -H "Authorization: Bearer ',
    written: (k) => k,
    after: '" https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse\n',
  },
  {
    name: 'application log line',
    before: '2026-11-20T09:31:02.123Z INFO [main] req=42 headers={authorization=Bearer ',
    written: (k) => k,
    after: '; host=bedrock} status=200\n',
  },
  { name: 'source code with a semicolon', before: 'const k = `', written: (k) => k, after: '`;\n' },
];

function expectedPosition(before: string): { line: number; column: number } {
  const lines = before.split('\n');
  return { line: lines.length, column: (lines[lines.length - 1] ?? '').length + 1 };
}

function one(findings: LeakFinding[]): LeakFinding {
  expect(findings).toHaveLength(1);
  return findings[0] as LeakFinding;
}

describe('findLeaks: long-term keys', () => {
  const key = escapeRichLongTermKey();

  it.each(CONTEXTS)('finds the key in $name, with its facts and position', ({ before, written, after }) => {
    // Prepare
    const text = before + written(key) + after;

    // Act
    const finding = one(findLeaks(text, { now: NOW }));

    // Assess
    expect(finding).toEqual({
      kind: 'LONG_TERM',
      ...expectedPosition(before),
      fingerprint: fingerprint(key),
      redacted: redactedForm(key),
      longTerm: {
        userName: expect.stringMatching(/^BedrockAPIKey-\d{4}$/),
        accountId: '111122223333',
        alias: expect.stringMatching(/^BedrockAPIKey-\d{4}-at-111122223333$/),
      },
    });
    expect(leakedFragments(JSON.stringify(finding), [key])).toEqual([]);
  });

  it('decodes user name, account and alias of keys on any IAM user', () => {
    // Prepare
    const users = ['ci-bot', 'svc+deploy=prod,eu.team@example.com', 'a', 'x'.repeat(64), 'team-at-dev'];
    const keys = users.map((u, i) => handBuiltLongTermKey(u, `00000000000${i}`, `s3cr3t/${i}+value`));

    // Act
    const findings = findLeaks(keys.join('\n'), { now: NOW });

    // Assess
    expect(findings.map((f) => f.longTerm)).toEqual(
      users.map((u, i) => ({ userName: u, accountId: `00000000000${i}`, alias: `${u}-at-00000000000${i}` })),
    );
    expect(findings.map((f) => [f.line, f.column])).toEqual(users.map((_, i) => [i + 1, 1]));
  });

  it('finds every key of a line, in order, with their columns', () => {
    // Prepare
    const a = fakeLongTermKey('first');
    const b = fakeLongTermKey('second', '444455556666');
    const text = `keys: ${a}, ${b}, ${a}`;

    // Act
    const findings = findLeaks(text, { now: NOW });

    // Assess
    expect(findings.map((f) => [f.column, f.fingerprint, f.longTerm?.accountId])).toEqual([
      [7, fingerprint(a), '111122223333'],
      [7 + a.length + 2, fingerprint(b), '444455556666'],
      [7 + a.length + 2 + b.length + 2, fingerprint(a), '111122223333'],
    ]);
  });

  it('gives the same fingerprint to the key however it is escaped', () => {
    // Prepare
    const text = CONTEXTS.map((c) => c.before + c.written(key) + c.after).join('\n');

    // Act
    const findings = findLeaks(text, { now: NOW });

    // Assess
    expect(findings).toHaveLength(CONTEXTS.length);
    expect(new Set(findings.map((f) => f.fingerprint))).toEqual(new Set([fingerprint(key)]));
  });
});

describe('findLeaks: short-term keys', () => {
  let generated: string;
  let session: string;

  beforeAll(async () => {
    generated = await generatedShortTermKey({
      signedAt: SIGNED_AT,
      region: 'us-west-2',
      expiresInSeconds: 900,
    });
    session = await generatedShortTermKey({ signedAt: SIGNED_AT, region: 'eu-central-1', session: true });
  });

  it('decodes a key made by @aws/bedrock-token-generator', () => {
    // Act
    const finding = one(findLeaks(`token: ${generated}\n`, { now: NOW }));

    // Assess
    expect(generated.startsWith('bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t')).toBe(true);
    expect(finding).toEqual({
      kind: 'SHORT_TERM',
      line: 1,
      column: 8,
      fingerprint: fingerprint(generated),
      redacted: redactedForm(generated),
      shortTerm: {
        accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
        region: 'us-west-2',
        signedAt: '2026-11-20T09:31:02.000Z',
        expiresInSeconds: 900,
        expiresAt: '2026-11-20T09:46:02.000Z',
        expired: false,
        hasSessionToken: false,
      },
    });
  });

  it('decodes a generated key signed with temporary credentials (session token)', () => {
    // Act
    const finding = one(findLeaks(session, { now: NOW }));

    // Assess
    expect(session.length).toBeGreaterThan(900);
    expect(finding.shortTerm).toEqual({
      accessKeyId: 'ASIAIOSFODNN7EXAMPLE',
      region: 'eu-central-1',
      signedAt: '2026-11-20T09:31:02.000Z',
      expiresInSeconds: 43200,
      expiresAt: '2026-11-20T21:31:02.000Z',
      expired: false,
      hasSessionToken: true,
    });
  });

  it('tells an expired key from one still within its lifetime', () => {
    // Act
    const justBefore = one(findLeaks(generated, { now: new Date('2026-11-20T09:46:01.999Z') }));
    const atExpiry = one(findLeaks(generated, { now: new Date('2026-11-20T09:46:02Z') }));
    const dayLater = one(findLeaks(generated, { now: new Date('2026-11-21T09:31:02Z') }));

    // Assess
    expect([justBefore, atExpiry, dayLater].map((f) => f.shortTerm?.expired)).toEqual([false, true, true]);
  });

  it.each(CONTEXTS)('finds a generated key in $name', ({ before, written, after }) => {
    // Prepare
    const text = before + written(generated) + after;

    // Act
    const finding = one(findLeaks(text, { now: NOW }));

    // Assess
    expect(finding).toMatchObject({ kind: 'SHORT_TERM', ...expectedPosition(before) });
    expect(finding.fingerprint).toBe(fingerprint(generated));
    expect(finding.shortTerm?.accessKeyId).toBe('AKIAIOSFODNN7EXAMPLE');
  });

  it.each(CONTEXTS)('finds a session-token key in $name', ({ before, written, after }) => {
    // Act
    const finding = one(findLeaks(before + written(session) + after, { now: NOW }));

    // Assess
    expect(finding).toMatchObject({ kind: 'SHORT_TERM', ...expectedPosition(before) });
    expect(finding.fingerprint).toBe(fingerprint(session));
    expect(finding.shortTerm?.hasSessionToken).toBe(true);
  });

  it('decodes hand-built keys to the documented format (static and session credentials, other regions)', () => {
    // Prepare
    const keys = [
      handBuiltShortTermKey(),
      handBuiltShortTermKey({
        credential: 'ASIAY34FZKBOKMUTVV7A/20261231/us-gov-west-1/bedrock/aws4_request',
        date: '20261231T235959Z',
        expires: '43200',
        sessionToken: 'FwoGZXIvYXdzEXAMPLE//+token==',
      }),
      fakeShortTermKey('support-helper'),
    ];

    // Act
    const findings = findLeaks(keys.join(' '), { now: NOW });

    // Assess
    expect(findings.map((f) => f.shortTerm)).toEqual([
      {
        accessKeyId: 'AKIAI44QH8DHBEXAMPLE',
        region: 'eu-west-1',
        signedAt: '2026-11-20T09:31:02.000Z',
        expiresInSeconds: 3600,
        expiresAt: '2026-11-20T10:31:02.000Z',
        expired: false,
        hasSessionToken: false,
      },
      {
        accessKeyId: 'ASIAY34FZKBOKMUTVV7A',
        region: 'us-gov-west-1',
        signedAt: '2026-12-31T23:59:59.000Z',
        expiresInSeconds: 43200,
        expiresAt: '2027-01-01T11:59:59.000Z',
        expired: false,
        hasSessionToken: true,
      },
      expect.objectContaining({ region: 'us-east-1', expiresInSeconds: 43200, expired: false }),
    ]);
  });
  it.each(['us-east-1', 'ap-southeast-2', 'us-gov-west-1', 'cn-north-1', 'eusc-de-east-1'])(
    'accepts the region %s in the credential scope',
    (region) => {
      // Prepare
      const key = handBuiltShortTermKey({
        credential: `AKIAI44QH8DHBEXAMPLE/20261120/${region}/bedrock/aws4_request`,
      });

      // Act
      const finding = one(findLeaks(key, { now: NOW }));

      // Assess
      expect(finding.shortTerm?.region).toBe(region);
    },
  );
});

describe('findLeaks: decoys', () => {
  const longKey = fakeLongTermKey('decoy-base');
  const shortKey = handBuiltShortTermKey();
  const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
  const randomBytes = (seed: string, n: number) => {
    let out = Buffer.alloc(0);
    for (let i = 0; out.length < n; i += 1)
      out = Buffer.concat([out, createHash('sha256').update(`${seed}${i}`).digest()]);
    return out.subarray(0, n);
  };

  const decoys: Array<[string, string]> = [
    ['the bare prefixes in prose', 'Long-term keys start with ABSK; short-term ones with bedrock-api-key-.'],
    ['the gitleaks short-term literal alone', 'grep bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t logs/'],
    ['ABSK + random base64 (decodes to garbage)', `ABSK${b64(randomBytes('noise', 96))}`],
    [
      'ABSK + base64 of text without an alias',
      `ABSK${b64('hello-world:this-is-not-a-key-but-looks-long-enough')}`,
    ],
    [
      'ABSK + alias with an 11-digit account',
      `ABSK${b64('BedrockAPIKey-abcd-at-11112222333:secretsecretsecret')}`,
    ],
    [
      'ABSK + alias with a 13-digit account',
      `ABSK${b64('BedrockAPIKey-abcd-at-1111222233334:secretsecret')}`,
    ],
    ['ABSK + user name with a character IAM refuses', `ABSK${b64('bad/user-at-111122223333:secretsecret')}`],
    ['ABSK + user name longer than 64', `ABSK${b64(`${'u'.repeat(65)}-at-111122223333:secretsecret`)}`],
    ['ABSK + an empty secret', `ABSK${b64('BedrockAPIKey-abcd-at-111122223333:')}`],
    [
      'ABSK + a secret with a control character',
      `ABSK${b64('BedrockAPIKey-abcd-at-111122223333:se\u0001cret')}`,
    ],
    ['a long-term key truncated mid-quantum', longKey.slice(0, -2)],
    ['a long-term key without its padding', longKey.replace(/=+$/, '') + (longKey.endsWith('=') ? '' : 'A')],
    ['a long-term key run into more base64', `${longKey.replace(/=+$/, '')}QUFB`],
    ['a short-term key truncated', shortKey.slice(0, -12)],
    ['a short-term key truncated mid-quantum', shortKey.slice(0, -1)],
    ['a short-term key for a non-bedrock URL', handBuiltShortTermKey({ host: 'evil.example.com' })],
    [
      'a short-term key for a bedrock look-alike',
      handBuiltShortTermKey({ host: 'bedrock.amazonaws.com.evil.io' }),
    ],
    ['a short-term key with the wrong Action', handBuiltShortTermKey({ action: 'GetCallerIdentity' })],
    ['a short-term key with another algorithm', handBuiltShortTermKey({ algorithm: 'AWS4-HMAC-SHA1' })],
    [
      'a short-term key scoped to another service',
      handBuiltShortTermKey({ credential: 'AKIAI44QH8DHBEXAMPLE/20261120/eu-west-1/s3/aws4_request' }),
    ],
    [
      'a short-term key with a malformed access key id',
      handBuiltShortTermKey({ credential: 'AKIAshort/20261120/eu-west-1/bedrock/aws4_request' }),
    ],
    [
      'a short-term key with a bad region',
      handBuiltShortTermKey({ credential: 'AKIAI44QH8DHBEXAMPLE/20261120/Mars/bedrock/aws4_request' }),
    ],
    [
      'a short-term key without the aws4_request terminator',
      handBuiltShortTermKey({ credential: 'AKIAI44QH8DHBEXAMPLE/20261120/eu-west-1/bedrock/aws4' }),
    ],
    [
      'a short-term key whose date differs from its scope',
      handBuiltShortTermKey({ date: '20261121T093102Z' }),
    ],
    [
      'a short-term key with an impossible date',
      handBuiltShortTermKey({
        credential: 'AKIAI44QH8DHBEXAMPLE/20260231/eu-west-1/bedrock/aws4_request',
        date: '20260231T093102Z',
      }),
    ],
    ['a short-term key with a lifetime of 0', handBuiltShortTermKey({ expires: '0' })],
    ['a short-term key with a lifetime over 12 h', handBuiltShortTermKey({ expires: '43201' })],
    ['a short-term key with a short signature', handBuiltShortTermKey({ signature: 'ab'.repeat(31) })],
    ['a short-term key with another version', handBuiltShortTermKey({ version: '2' })],
    ['a short-term prefix before random base64', `bedrock-api-key-${b64(randomBytes('st-noise', 300))}`],
  ];

  it.each(decoys)('does not report %s', (_name, text) => {
    // Act
    const findings = findLeaks(`value: ${text}\n`, { now: NOW });

    // Assess
    expect(findings).toEqual([]);
  });

  it('still finds a real key next to decoys', () => {
    // Prepare
    const text = `${decoys.map(([, d]) => d).join('\n')}\nreal: ${longKey}\n`;

    // Act
    const findings = findLeaks(text, { now: NOW });

    // Assess
    expect(findings.map((f) => [f.line, f.column, f.fingerprint])).toEqual([
      [decoys.length + 1, 7, fingerprint(longKey)],
    ]);
  });

  it('finds a key ended by an escaped \\n before a base64 run longer than any key', () => {
    // Prepare
    const unpadded = handBuiltLongTermKey('ci-bot', '111122223333', 's'.repeat(28));
    const text = `{"a":"${unpadded}\\n${'QUJD'.repeat(MAX_KEY_BODY / 2)}"}`;

    // Act
    const findings = findLeaks(text, { now: NOW });

    // Assess
    expect(unpadded.endsWith('=')).toBe(false);
    expect(findings.map((f) => [f.column, f.fingerprint])).toEqual([[7, fingerprint(unpadded)]]);
  });

  it('gives up on a base64 run longer than any key', () => {
    // Prepare
    const text = `ABSK${'A'.repeat(MAX_KEY_BODY + 8)}`;

    // Act / Assess
    expect(findLeaks(text, { now: NOW })).toEqual([]);
  });
});
