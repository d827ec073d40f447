import fc from 'fast-check';
import {
  defaultProductArn,
  FINDING_GENERATOR_ID,
  type FindingState,
  findingBytes,
  findingId,
  IMPORT_MAX_FINDINGS,
  importBatches,
  keyFinding,
  planFinding,
} from '../../lambda/domain/security-hub';
import { type Decision, VIOLATION_CODES } from '../../lambda/domain/types';
import { ASFF_FINDING_MAX_BYTES, AsffFindingSchema } from '../support/asff';

const ACCOUNT = '111122223333';
const TARGET = { partition: 'aws', region: 'us-east-1', accountId: ACCOUNT };

function decision(over: Partial<Decision> = {}): Decision {
  return {
    decisionId: '2026-12-07T10:00:00.000Z/event/e-1',
    decidedAt: '2026-12-07T10:00:01.000Z',
    keyId: 'ACCAEXAMPLEKEYSHUB001',
    userName: 'svc-batch-summarizer',
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: { kind: 'event', eventId: 'e-1', eventName: 'CreateServiceSpecificCredential' },
    createdAt: '2026-12-07T09:59:00.000Z',
    expiresAt: null,
    neverExpires: true,
    owner: { value: 'team@example.com', source: 'tag' },
    violations: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'the key has no expiration date' }],
    action: 'DEACTIVATE',
    applied: false,
    mode: 'audit',
    deadline: null,
    policyVersion: 'p-fab9c2819480',
    ...over,
  };
}

const NEW = { recordState: 'ACTIVE' as const, isNew: true };

describe('keyFinding', () => {
  it('meets the ASFF requirements: required fields, types, lengths, the custom-integration product ARN', () => {
    // Act
    const f = keyFinding(decision(), NEW, '2026-12-07T10:00:01.000Z', TARGET);
    // Assess
    expect(AsffFindingSchema.safeParse(f).error?.issues).toBeUndefined();
    expect(f.ProductArn).toBe('arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default');
    expect(f.Id).toBe('bedrock-key-guard/111122223333/ACCAEXAMPLEKEYSHUB001');
    expect(f.GeneratorId).toBe(FINDING_GENERATOR_ID);
    expect(f.AwsAccountId).toBe(ACCOUNT);
    expect(f.Severity).toEqual({ Label: 'HIGH', Original: 'high' });
    expect(f.FindingProviderFields.Severity).toEqual(f.Severity);
    expect(f.RecordState).toBe('ACTIVE');
    expect(f.Workflow).toEqual({ Status: 'NEW' });
    expect(f.Compliance).toEqual({ Status: 'FAILED' });
    expect(f.ProductFields['bedrock-key-guard/decisionId']).toBe('2026-12-07T10:00:00.000Z/event/e-1');
    expect(f.Resources.map((r) => [r.Type, r.Id])).toEqual([
      ['AwsIamUser', 'arn:aws:iam::111122223333:user/svc-batch-summarizer'],
      [
        'Other',
        'arn:aws:iam::111122223333:user/svc-batch-summarizer/service-specific-credential/ACCAEXAMPLEKEYSHUB001',
      ],
    ]);
    expect(f.Remediation.Recommendation.Text).toMatch(/CredentialAgeDays/);
  });

  it('cuts every long field to its ASFF limit: every violation, 5,000-character details, a 128-character user', () => {
    // Prepare
    const d = decision({
      userName: 'u'.repeat(128),
      violations: VIOLATION_CODES.map((code) => ({
        code,
        severity: 'medium' as const,
        detail: 'x'.repeat(5000),
      })),
      owner: { value: 'o'.repeat(5000), source: 'tag' },
      waived: VIOLATION_CODES.map((code) => ({
        code,
        severity: 'low' as const,
        detail: 'w',
        approvalId: 'a'.repeat(200),
      })),
      deadline: '2026-12-09T10:00:01.000Z',
    });
    // Act
    const f = keyFinding(d, NEW, d.decidedAt, TARGET);
    // Assess
    expect(AsffFindingSchema.safeParse(f).error?.issues).toBeUndefined();
    expect(f.Title.length).toBeLessThanOrEqual(256);
    expect(f.Description.length).toBe(1024);
    expect(findingBytes(f)).toBeLessThan(ASFF_FINDING_MAX_BYTES);
  });

  it('a short-term key is an AwsIamAccessKey resource (its signing access key id, the issuer), critical when leaked', () => {
    // Prepare
    const d = decision({
      keyType: 'SHORT_TERM',
      keyId: 'ASIAEXAMPLESIGNER0001',
      userName: 'session-ci',
      violations: [{ code: 'LEAKED', severity: 'critical', detail: 'found in build.log' }],
    });
    // Act
    const f = keyFinding(d, NEW, d.decidedAt, TARGET);
    // Assess
    expect(AsffFindingSchema.safeParse(f).error?.issues).toBeUndefined();
    expect(f.Resources).toEqual([
      expect.objectContaining({
        Type: 'AwsIamAccessKey',
        Id: 'ASIAEXAMPLESIGNER0001',
        Details: {
          AwsIamAccessKey: {
            AccessKeyId: 'ASIAEXAMPLESIGNER0001',
            AccountId: ACCOUNT,
            PrincipalName: 'session-ci',
          },
        },
      }),
    ]);
    expect(f.Severity.Label).toBe('CRITICAL');
    expect(f.Types).toContain('Effects/Data Exposure/Bedrock API Key Leaked');
  });

  it('archived: PASSED, the reason in the description, no Workflow on an update (BatchImportFindings cannot change it)', () => {
    // Act
    const f = keyFinding(
      decision({ status: 'Inactive', action: 'ALLOW' }),
      { recordState: 'ARCHIVED', isNew: false },
      '2026-12-01T00:00:00.000Z',
      TARGET,
    );
    // Assess
    expect(AsffFindingSchema.safeParse(f).error?.issues).toBeUndefined();
    expect(f.RecordState).toBe('ARCHIVED');
    expect(f.Compliance.Status).toBe('PASSED');
    expect(f.Workflow).toBeUndefined();
    expect(f.CreatedAt).toBe('2026-12-01T00:00:00.000Z');
    expect(f.Description).toMatch(/the key is deactivated/);
    expect(f.Title).toMatch(/resolved$/);
  });

  it("organization mode: a member account's key is imported into the hub account, the key's account named in it", () => {
    // Prepare: the hub (TARGET) decides a key of member account 444455556666.
    const d = decision({ accountId: '444455556666' });
    // Act
    const f = keyFinding(d, NEW, d.decidedAt, TARGET);
    // Assess: BatchImportFindings with the default product ARN takes only the caller's own account.
    expect(AsffFindingSchema.safeParse(f).error?.issues).toBeUndefined();
    expect(f.AwsAccountId).toBe(ACCOUNT);
    expect(f.ProductArn).toBe(defaultProductArn(TARGET));
    expect(f.Id).toBe('bedrock-key-guard/444455556666/ACCAEXAMPLEKEYSHUB001');
    expect(f.Resources[0]?.Id).toBe('arn:aws:iam::444455556666:user/svc-batch-summarizer');
    expect(f.ProductFields['bedrock-key-guard/keyAccountId']).toBe('444455556666');
    expect(f.Description).toContain('in account 444455556666');
  });

  it('any user name, detail and owner text still meets the ASFF requirements (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 200 }).filter((s) => /\S/.test(s)),
        fc.array(
          fc.record({
            code: fc.constantFrom(...VIOLATION_CODES),
            severity: fc.constantFrom(
              'low' as const,
              'medium' as const,
              'high' as const,
              'critical' as const,
            ),
            detail: fc.string({ maxLength: 3000 }),
          }),
          { maxLength: 20 },
        ),
        fc.option(fc.string({ maxLength: 3000 }), { nil: null }),
        fc.constantFrom('Active' as const, 'Inactive' as const, 'Expired' as const, 'Deleted' as const),
        (userName, violations, owner, status) => {
          const d = decision({ userName, violations, owner: { value: owner, source: 'tag' }, status });
          const f = keyFinding(d, { recordState: 'ACTIVE', isNew: true }, d.decidedAt, TARGET);
          expect(AsffFindingSchema.safeParse(f).error?.issues).toBeUndefined();
          expect(findingBytes(f)).toBeLessThan(ASFF_FINDING_MAX_BYTES);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('planFinding', () => {
  const prior = (over: Partial<FindingState> = {}): FindingState => ({
    id: findingId(ACCOUNT, 'ACCAEXAMPLEKEYSHUB001'),
    createdAt: '2026-12-01T00:00:00.000Z',
    updatedAt: '2026-12-07T09:00:00.000Z',
    decisionId: '2026-12-07T09:00:00.000Z/sweep/s-1',
    recordState: 'ACTIVE',
    ...over,
  });

  it.each([
    [
      'a key with violations and no finding: a new finding',
      decision(),
      null,
      { kind: 'import', recordState: 'ACTIVE', isNew: true },
    ],
    [
      'a clean key with no finding: nothing',
      decision({ violations: [] }),
      null,
      { kind: 'skip', reason: 'nothing-to-report' },
    ],
    [
      'a deactivated key with no finding: nothing',
      decision({ status: 'Inactive' }),
      null,
      { kind: 'skip', reason: 'nothing-to-report' },
    ],
    [
      'a later decision with violations: an update',
      decision(),
      prior(),
      { kind: 'import', recordState: 'ACTIVE', isNew: false },
    ],
    [
      'the key fixed: archived',
      decision({ violations: [] }),
      prior(),
      { kind: 'import', recordState: 'ARCHIVED', isNew: false },
    ],
    [
      'the key deleted: archived',
      decision({ status: 'Deleted' }),
      prior(),
      { kind: 'import', recordState: 'ARCHIVED', isNew: false },
    ],
    [
      'still clean after archiving: archived again (a concurrent older import is put right)',
      decision({ violations: [] }),
      prior({ recordState: 'ARCHIVED' }),
      { kind: 'import', recordState: 'ARCHIVED', isNew: false },
    ],
    [
      'violations again after archiving: active again',
      decision(),
      prior({ recordState: 'ARCHIVED' }),
      { kind: 'import', recordState: 'ACTIVE', isNew: false },
    ],
    [
      'older than the decision imported: nothing',
      decision({ decidedAt: '2026-12-07T08:00:00.000Z' }),
      prior(),
      { kind: 'skip', reason: 'older-than-imported' },
    ],
    [
      'the archiving decision delivered again: imported again',
      decision({
        violations: [],
        decidedAt: '2026-12-07T09:00:00.000Z',
        decisionId: '2026-12-07T09:00:00.000Z/sweep/s-1',
      }),
      prior({ recordState: 'ARCHIVED' }),
      { kind: 'import', recordState: 'ARCHIVED', isNew: false },
    ],
  ])('%s', (_name, d, p, expected) => {
    expect(planFinding(d, p)).toEqual(expected);
  });
});

describe('importBatches', () => {
  it('at most 100 findings per request', () => {
    const sizes = importBatches(
      Array.from({ length: 250 }, (_, i) => i),
      () => 1000,
    ).map((b) => b.length);
    expect(sizes).toEqual([IMPORT_MAX_FINDINGS, IMPORT_MAX_FINDINGS, 50]);
  });

  it('under 6 MB per request: 40 findings of 200 KB go 30 + 10', () => {
    const sizes = importBatches(
      Array.from({ length: 40 }, (_, i) => i),
      () => 200 * 1024,
    ).map((b) => b.length);
    expect(sizes).toEqual([30, 10]);
    expect(30 * (200 * 1024 + 1)).toBeLessThan(6 * 1024 * 1024);
    expect(31 * (200 * 1024 + 1)).toBeGreaterThan(6 * 1024 * 1024 - 64 * 1024);
  });

  it('the product ARN of another partition and region', () => {
    expect(defaultProductArn({ partition: 'aws-us-gov', region: 'us-gov-west-1', accountId: ACCOUNT })).toBe(
      'arn:aws-us-gov:securityhub:us-gov-west-1:111122223333:product/111122223333/default',
    );
  });
});
