import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CloudTrailRecord, CloudTrailRecordSchema } from '../../lambda/domain/cloudtrail';
import type { KeyMetadata } from '../../lambda/domain/pipeline';
import {
  aggregateUses,
  attributeUse,
  classifyUsage,
  deactivatedUseReason,
  describeUsage,
  tokenTypeOf,
} from '../../lambda/domain/usage';
import type { BearerUse } from '../../lambda/domain/usage-types';

const FIXTURES = join(__dirname, '..', 'fixtures', 'cloudtrail');
const ACCOUNT = '111122223333';

function raw(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Record<string, unknown>;
}

function record(name: string, change: (r: Record<string, unknown>) => void = () => {}): CloudTrailRecord {
  const r = raw(name);
  change(r);
  return CloudTrailRecordSchema.parse(r);
}

function key(keyId: string, status: KeyMetadata['status'] = 'Active'): KeyMetadata {
  return { keyId, userName: 'svc-chatbot', status, createdAt: '2026-11-01T00:00:00.000Z', expiresAt: null };
}

let base: BearerUse | null = null;
function use(over: Partial<BearerUse> = {}): BearerUse {
  base ??= classifyUsage(record('bedrock-invoke-model-bearer-token.json'));
  if (!base) throw new Error('fixture is not a bearer-token use');
  return { ...base, ...over };
}

describe('classifyUsage: record shapes', () => {
  it('reads a bedrock-runtime InvokeModel management event made with a long-term key (IAM user)', () => {
    // Act
    const u = classifyUsage(record('bedrock-invoke-model-bearer-token.json'));

    // Assess
    expect(u).toEqual({
      accountId: ACCOUNT,
      region: 'eu-central-1',
      eventSource: 'bedrock.amazonaws.com',
      eventName: 'InvokeModel',
      eventId: 'f6b2d8a1-3e47-4c90-a5d3-8c1e0b7f9246',
      eventTime: '2025-07-09T16:44:03.000Z',
      declaredKeyType: null,
      principal: {
        type: 'IAMUser',
        arn: 'arn:aws:iam::111122223333:user/svc-chatbot',
        userName: 'svc-chatbot',
        sessionIssuerArn: null,
        accessKeyId: null,
      },
      modelId: 'eu.anthropic.claude-3-7-sonnet-20250219-v1:0',
      sourceIp: '192.0.2.145',
      userAgent: expect.stringContaining('Boto3/1.39.4') as unknown as string,
      errorCode: null,
    });
  });

  it('reads a short-term ConverseStream call by an assumed-role session, with the role as session issuer', () => {
    // Act
    const u = classifyUsage(record('bedrock-converse-stream-short-term-assumed-role.json'));

    // Assess
    expect(u?.principal).toEqual({
      type: 'AssumedRole',
      arn: 'arn:aws:sts::111122223333:assumed-role/ChatbotRuntime/i-0abc1234def567890',
      userName: null,
      sessionIssuerArn: 'arn:aws:iam::111122223333:role/ChatbotRuntime',
      accessKeyId: 'ASIAEXAMPLESESSION01',
    });
    expect(u).toMatchObject({
      region: 'us-west-2',
      eventName: 'ConverseStream',
      modelId: 'us.amazon.nova-pro-v1:0',
    });
  });

  it('reads a bedrock-mantle data event: flag and token type in requestParameters, ABSK means LONG_TERM', () => {
    // Act
    const u = classifyUsage(record('bedrock-mantle-chat-completion-absk.json'));

    // Assess
    expect(u).toMatchObject({
      eventSource: 'bedrock-mantle.amazonaws.com',
      eventName: 'CreateChatCompletion',
      declaredKeyType: 'LONG_TERM',
      modelId: 'openai.gpt-oss-120b-1:0',
      region: 'us-east-1',
    });
  });

  it('ignores SigV4 calls: runtime without the flag, and mantle with callWithBearerToken false', () => {
    // Act
    const runtime = describeUsage(record('bedrock-invoke-model-sigv4.json'));
    const mantle = describeUsage(record('bedrock-mantle-list-models-sigv4.json'));

    // Assess
    expect(runtime).toEqual({ use: null, ignored: 'not-bearer-token', unknownTokenType: null });
    expect(mantle).toEqual({ use: null, ignored: 'not-bearer-token', unknownTokenType: null });
  });

  it('ignores other services, even with a bearer flag', () => {
    // Act
    const c = describeUsage(
      record('bedrock-invoke-model-bearer-token.json', (r) => {
        r.eventSource = 'sagemaker.amazonaws.com';
      }),
    );

    // Assess
    expect(c.ignored).toBe('not-bedrock');
  });

  it('accepts the string "true" and a failed call, keeping its error code', () => {
    // Act
    const u = classifyUsage(record('bedrock-invoke-model-bearer-token-denied.json'));

    // Assess
    expect(u).toMatchObject({ errorCode: 'AccessDenied', eventTime: '2026-11-21T07:03:29.000Z' });
  });

  it('accepts the flag and the token type in either additionalEventData or requestParameters', () => {
    // Prepare
    const inRequest = record('bedrock-invoke-model-bearer-token.json', (r) => {
      r.additionalEventData = { inputTokens: 3 };
      r.requestParameters = { modelId: 'm', callWithBearerToken: 'TRUE', bearerTokenType: 'SHORT_TERM' };
    });
    const inExtra = record('bedrock-mantle-chat-completion-absk.json', (r) => {
      r.requestParameters = { model: 'm' };
      r.additionalEventData = { callWithBearerToken: true, bearerTokenType: 'LONG_TERM' };
    });

    // Act / Assess
    expect(classifyUsage(inRequest)?.declaredKeyType).toBe('SHORT_TERM');
    expect(classifyUsage(inExtra)?.declaredKeyType).toBe('LONG_TERM');
  });

  it('treats a known token type without the flag as a bearer-token call', () => {
    // Prepare
    const r = record('bedrock-mantle-chat-completion-absk.json', (x) => {
      x.requestParameters = { model: 'm', bearerTokenType: 'SHORT_TERM' };
    });

    // Act / Assess
    expect(classifyUsage(r)?.declaredKeyType).toBe('SHORT_TERM');
  });

  it('keeps an unknown token type out of the declared type and reports it', () => {
    // Prepare
    const r = record('bedrock-mantle-chat-completion-absk.json', (x) => {
      x.requestParameters = { model: 'm', callWithBearerToken: true, bearerTokenType: 'MEDIUM_TERM' };
    });

    // Act
    const c = describeUsage(r);

    // Assess
    expect(c.use?.declaredKeyType).toBeNull();
    expect(c.unknownTokenType).toBe('MEDIUM_TERM');
  });

  it('uses the envelope account when the record names none, and ignores a record without identity', () => {
    // Prepare
    const noAccount = record('bedrock-invoke-model-bearer-token.json', (r) => {
      delete r.recipientAccountId;
      (r.userIdentity as Record<string, unknown>).accountId = undefined;
    });
    const noIdentity = record('bedrock-invoke-model-bearer-token.json', (r) => {
      delete r.userIdentity;
    });

    // Act / Assess
    expect(classifyUsage(noAccount, { envelopeAccount: '444455556666' })?.accountId).toBe('444455556666');
    expect(describeUsage(noIdentity).ignored).toBe('incomplete-record');
  });

  it('credits a call without recipientAccountId to the envelope account, not to the account its caller claims', () => {
    // Prepare: a foreign bus's event whose caller names the governed account
    const rec = record('bedrock-invoke-model-bearer-token.json', (r) => {
      delete r.recipientAccountId;
    });
    const claimed = (rec.userIdentity as Record<string, unknown>).accountId;

    // Act
    const use = classifyUsage(rec, { envelopeAccount: '777788889999' });

    // Assess
    expect(claimed).not.toBe('777788889999');
    expect(use?.accountId).toBe('777788889999');
  });

  it('ignores a call whose recipientAccountId and envelope account disagree', () => {
    // Prepare
    const rec = record('bedrock-invoke-model-bearer-token.json');

    // Act
    const c = describeUsage(rec, { envelopeAccount: '777788889999' });

    // Assess
    expect(c.use).toBeNull();
    expect(c.ignored).toBe('account-mismatch');
  });

  it('ignores a call dated implausibly far in the future, saying why', () => {
    // Prepare
    const rec = record('bedrock-invoke-model-bearer-token.json', (r) => {
      r.eventTime = '9999-12-31T00:00:00Z';
    });

    // Act
    const c = describeUsage(rec, { notAfter: new Date('2026-11-21T00:00:00Z') });

    // Assess
    expect(c.use).toBeNull();
    expect(c.ignored).toBe('future-event');
    expect(c.detail).toContain('eventTime 9999-12-31T00:00:00.000Z is after 2026-11-21T00:00:00.000Z');
  });

  it('maps token type values', () => {
    expect(tokenTypeOf('ABSK')).toBe('LONG_TERM');
    expect(tokenTypeOf('long_term')).toBe('LONG_TERM');
    expect(tokenTypeOf('SHORT_TERM')).toBe('SHORT_TERM');
    expect(tokenTypeOf('bedrock-api-key')).toBeNull();
  });
});

describe('attributeUse', () => {
  const ROLE = 'arn:aws:iam::111122223333:role/ChatbotRuntime';

  it('an IAM user holding one Bedrock key, no declared type: long-term, that key', () => {
    expect(attributeUse(use(), [key('ACCA1')])).toEqual({
      keyType: 'LONG_TERM',
      subject: { kind: 'key', keyId: 'ACCA1', userName: 'svc-chatbot' },
    });
  });

  it('two keys, one Active: the Active one; two Active keys: the user (unattributed)', () => {
    expect(attributeUse(use(), [key('ACCA1', 'Inactive'), key('ACCA2')]).subject).toEqual({
      kind: 'key',
      keyId: 'ACCA2',
      userName: 'svc-chatbot',
    });
    expect(attributeUse(use(), [key('ACCA1'), key('ACCA2')]).subject).toEqual({
      kind: 'user',
      userName: 'svc-chatbot',
    });
  });

  it('the only key, though Inactive (a deactivated key attempted): that key', () => {
    expect(attributeUse(use({ errorCode: 'AccessDenied' }), [key('ACCA1', 'Inactive')]).subject).toEqual({
      kind: 'key',
      keyId: 'ACCA1',
      userName: 'svc-chatbot',
    });
  });

  it('an IAM user without Bedrock keys minted a short-term key with its own credentials', () => {
    expect(attributeUse(use(), [])).toEqual({
      keyType: 'SHORT_TERM',
      subject: { kind: 'principal', principalArn: 'arn:aws:iam::111122223333:user/svc-chatbot' },
    });
  });

  it('an assumed-role session: short-term, per role (not per session)', () => {
    // Prepare
    const u = classifyUsage(record('bedrock-converse-stream-short-term-assumed-role.json')) as BearerUse;

    // Act / Assess
    expect(attributeUse(u, null)).toEqual({
      keyType: 'SHORT_TERM',
      subject: { kind: 'principal', principalArn: ROLE },
    });
  });

  it('the declared type wins: SHORT_TERM by a user holding keys is short-term; LONG_TERM with no key listed is the user', () => {
    expect(attributeUse(use({ declaredKeyType: 'SHORT_TERM' }), [key('ACCA1')]).keyType).toBe('SHORT_TERM');
    expect(attributeUse(use({ declaredKeyType: 'LONG_TERM' }), [])).toEqual({
      keyType: 'LONG_TERM',
      subject: { kind: 'user', userName: 'svc-chatbot' },
    });
  });
});

describe('aggregateUses', () => {
  const byKey = () => ({
    keyType: 'LONG_TERM' as const,
    subject: { kind: 'key' as const, keyId: 'ACCA1', userName: 'svc-chatbot' },
  });

  it('one aggregate per subject: calls, failed calls, first/last times, distinct regions and models, latest IP/UA', () => {
    // Prepare (out of order on purpose)
    const uses = [
      use({
        eventId: 'e2',
        eventTime: '2026-11-20T10:00:02.000Z',
        region: 'us-east-1',
        modelId: 'm2',
        sourceIp: '192.0.2.2',
      }),
      use({
        eventId: 'e1',
        eventTime: '2026-11-20T10:00:01.000Z',
        region: 'eu-west-1',
        modelId: 'm1',
        sourceIp: '192.0.2.1',
      }),
      use({
        eventId: 'e3',
        eventTime: '2026-11-20T10:00:03.000Z',
        region: 'us-east-1',
        modelId: null,
        errorCode: 'ThrottlingException',
        sourceIp: '192.0.2.3',
        userAgent: 'ua-3',
      }),
    ];

    // Act
    const out = aggregateUses(uses, byKey);

    // Assess
    expect(out).toHaveLength(1);
    expect(out[0]?.aggregate).toEqual({
      accountId: ACCOUNT,
      subject: { kind: 'key', keyId: 'ACCA1', userName: 'svc-chatbot' },
      keyType: 'LONG_TERM',
      calls: 3,
      failedCalls: 1,
      firstUsedAt: '2026-11-20T10:00:01.000Z',
      lastUsedAt: '2026-11-20T10:00:02.000Z',
      lastAttemptAt: '2026-11-20T10:00:03.000Z',
      regions: ['eu-west-1', 'us-east-1'],
      models: ['m1', 'm2'],
      lastSourceIp: '192.0.2.3',
      lastUserAgent: 'ua-3',
    });
    expect(out[0]?.latest.eventId).toBe('e3');
    // Throttling is a failure, not a refusal: it says nothing about a deactivated key.
    expect(out[0]?.deniedCalls).toBe(0);
  });

  it('counts refused calls (any AccessDenied / Unauthorized / Forbidden form) apart from other failures', () => {
    // Prepare
    const codes = [
      'AccessDenied',
      'AccessDeniedException',
      'UnauthorizedException',
      'ThrottlingException',
      null,
    ];

    // Act
    const out = aggregateUses(
      codes.map((errorCode, i) => use({ eventId: `e${i}`, errorCode })),
      byKey,
    );

    // Assess
    expect(out[0]?.aggregate).toMatchObject({ calls: 5, failedCalls: 4 });
    expect(out[0]?.deniedCalls).toBe(3);
  });

  it('only failed calls: lastUsedAt is null, the attempt is still recorded', () => {
    // Act
    const out = aggregateUses([use({ errorCode: 'AccessDenied' })], byKey);

    // Assess
    expect(out[0]?.aggregate).toMatchObject({ calls: 1, failedCalls: 1, lastUsedAt: null });
  });

  it('separates subjects and accounts', () => {
    // Prepare
    const uses = [use(), use({ accountId: '444455556666' }), use({ eventId: 'x' })];

    // Act
    const out = aggregateUses(uses, (u) =>
      u.eventId === 'x'
        ? { keyType: 'SHORT_TERM', subject: { kind: 'principal', principalArn: 'arn:aws:iam::1:role/r' } }
        : byKey(),
    );

    // Assess
    expect(out.map((o) => [o.aggregate.accountId, o.aggregate.subject.kind, o.aggregate.calls])).toEqual([
      [ACCOUNT, 'key', 1],
      ['444455556666', 'key', 1],
      [ACCOUNT, 'principal', 1],
    ]);
  });

  it('500 calls of one key make one aggregate', () => {
    // Prepare
    const uses = Array.from({ length: 500 }, (_, i) =>
      use({ eventId: `e${i}`, eventTime: new Date(Date.UTC(2026, 10, 20, 10, 0, i % 60)).toISOString() }),
    );

    // Act
    const out = aggregateUses(uses, byKey);

    // Assess
    expect(out).toHaveLength(1);
    expect(out[0]?.aggregate.calls).toBe(500);
  });
});

describe('caller-controlled text', () => {
  it('redacts anything key-shaped in the user agent and source IP, and bounds their length', () => {
    // Prepare
    const planted = `ABSK${'Q'.repeat(120)}`;
    const r = record('bedrock-invoke-model-bearer-token.json', (x) => {
      x.userAgent = `curl/8.5 Authorization: Bearer ${planted} ${'x'.repeat(2000)}`;
      x.sourceIPAddress = planted;
    });

    // Act
    const u = classifyUsage(r);

    // Assess
    expect(u?.userAgent).toContain('curl/8.5');
    expect(u?.userAgent).toContain('ABSK…QQQQ');
    expect(u?.userAgent?.length).toBeLessThanOrEqual(512);
    expect(JSON.stringify(u)).not.toContain(planted.slice(4, 40));
  });
});

describe('deactivatedUseReason', () => {
  it('names the latest attempt’s region, source IP and user agent', () => {
    // Prepare
    const [u] = aggregateUses(
      [use({ errorCode: 'AccessDenied', userAgent: 'curl/8.5', sourceIp: '198.51.100.9' })],
      () => ({ keyType: 'LONG_TERM', subject: { kind: 'key', keyId: 'ACCA1', userName: 'svc-chatbot' } }),
    );

    // Act
    const reason = deactivatedUseReason(u as NonNullable<typeof u>);

    // Assess
    expect(reason).toContain('eu-central-1');
    expect(reason).toContain('198.51.100.9');
    expect(reason).toContain('curl/8.5');
    expect(reason).toContain('all failed');
  });
});
