import { OCSF_VERSION, ocsfDetectionFinding, ocsfFindingUid, ocsfJson } from '../../lambda/domain/ocsf';
import { canonicalDecision, type Decision, VIOLATION_CODES } from '../../lambda/domain/types';
import { OCSF_EXTRACT, ocsfProblems } from '../support/ocsf';

/**
 * OCSF output: every kind of decision maps to a Detection Finding that the pinned OCSF 1.5.0 schema accepts
 * (test/support/ocsf.ts says what is validated), and the mapping carries the decision's meaning.
 */

const ACCOUNT = '111122223333';

function decision(over: Partial<Decision> = {}): Decision {
  return {
    decisionId: '2026-11-20T10:05:44.000Z/event/0f1e2d3c',
    decidedAt: '2026-11-20T10:05:47.120Z',
    keyId: 'ACCA2JFEEMBWZ6UGEI2CH',
    userName: 'svc-batch-summarizer',
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: {
      kind: 'event',
      eventId: '0f1e2d3c',
      eventName: 'CreateServiceSpecificCredential',
      eventTime: '2026-11-20T10:05:44Z',
    },
    createdAt: '2026-11-20T10:05:44.000Z',
    expiresAt: null,
    neverExpires: true,
    owner: { value: 'arn:aws:iam::111122223333:user/bob', source: 'creator' },
    violations: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'the key has no expiration date' }],
    action: 'DEACTIVATE',
    applied: true,
    mode: 'enforce',
    deadline: null,
    policyVersion: 'p-fab9c2819480',
    notice: 'action',
    ...over,
  };
}

/** One decision of every kind keyguard records: actions, modes, statuses, triggers, key types, approvals, leaks. */
const KINDS: Record<string, Decision> = {
  'deactivate applied (enforce)': decision(),
  'deactivate planned (audit)': decision({ applied: false, mode: 'audit', notice: 'first' }),
  'deactivate after the grace deadline': decision({
    violations: [{ code: 'MISSING_OWNER', severity: 'medium', detail: 'no owner tag' }],
    reason: 'grace deadline 2026-11-22T10:05:44.000Z passed with violations remaining',
    deadline: '2026-11-22T10:05:44.000Z',
    trigger: { kind: 'sweep' },
  }),
  'delete (applied)': decision({ action: 'DELETE' }),
  'notify, first notice': decision({
    action: 'NOTIFY',
    applied: false,
    notice: 'first',
    noticeDigest: 'digest/next',
    deadline: '2026-11-22T10:05:44.000Z',
    violations: [
      { code: 'MISSING_PURPOSE', severity: 'low', detail: 'no purpose tag' },
      { code: 'EXCEEDS_MAX_AGE', severity: 'medium', detail: 'lifetime 400 days > 90' },
    ],
  }),
  'notify, reminder from a sweep': decision({
    action: 'NOTIFY',
    applied: false,
    notice: 'reminder',
    noticeDigest: 'digest/sweep-1',
    trigger: { kind: 'sweep' },
    violations: [{ code: 'REVIEW_OVERDUE', severity: 'medium', detail: 'review overdue since 2026-10-01' }],
  }),
  'allow, no violation (resolved)': decision({
    action: 'ALLOW',
    applied: false,
    violations: [],
    notice: 'resolved',
    neverExpires: false,
    expiresAt: '2026-12-20T10:05:44.000Z',
  }),
  'allow, inactive key with violations': decision({ action: 'ALLOW', applied: false, status: 'Inactive' }),
  'allow, expired key': decision({ action: 'ALLOW', applied: false, status: 'Expired', notice: null }),
  'allow, deleted key': decision({
    action: 'ALLOW',
    applied: false,
    status: 'Deleted',
    violations: [],
    trigger: { kind: 'replay', eventName: 'DeleteServiceSpecificCredential' },
  }),
  'allow, every violation approved': decision({
    action: 'ALLOW',
    applied: false,
    violations: [],
    waived: [
      {
        code: 'NEVER_EXPIRES',
        severity: 'high',
        detail: 'the key has no expiration date',
        approvalId: 'apr-2026-11-20-01',
      },
    ],
    trigger: { kind: 'approval' },
  }),
  'expiring soon (informational reminder)': decision({
    action: 'NOTIFY',
    applied: false,
    notice: 'expiring',
    neverExpires: false,
    expiresAt: '2026-11-25T10:05:44.000Z',
    violations: [{ code: 'EXPIRING_SOON', severity: 'low', detail: 'expires in 5 days' }],
    trigger: { kind: 'review' },
  }),
  'reactivated without approval (critical)': decision({
    violations: [{ code: 'REACTIVATED_WITHOUT_APPROVAL', severity: 'critical', detail: 'Active again' }],
    trigger: { kind: 'event', eventId: 'e-9', eventName: 'UpdateServiceSpecificCredential' },
  }),
  'usage of a long-term key where not allowed': decision({
    violations: [
      { code: 'LONG_TERM_NOT_ALLOWED', severity: 'high', detail: 'long-term keys are not allowed' },
    ],
    trigger: { kind: 'usage', eventId: 'u-1', eventName: 'InvokeModel' },
  }),
  'short-term key used by a principal': decision({
    keyType: 'SHORT_TERM',
    keyId: 'AKIAIOSFODNN7EXAMPLE',
    createdAt: null,
    expiresAt: null,
    neverExpires: false,
    owner: { value: null, source: 'fallback' },
    action: 'NOTIFY',
    applied: false,
    violations: [{ code: 'UNUSED', severity: 'medium', detail: 'not used for 120 days' }],
    trigger: { kind: 'usage' },
  }),
  'leak, verified, deactivated': decision({
    violations: [{ code: 'LEAKED', severity: 'critical', detail: 'found in log group /app/prod' }],
    trigger: { kind: 'leak', eventId: 'l-1' },
    leak: {
      fingerprint: 'sha256:0123456789abcdef',
      redacted: 'ABSK…wxyz [sha256:0123456789abcdef]',
      location: {
        logGroup: '/app/prod',
        logStream: 'web/1',
        logEventId: '3762',
        timestamp: '2026-11-20T10:00:00.000Z',
        line: 1,
        column: 17,
      },
      verification: {
        result: 'VERIFIED',
        method: 'bedrock:ListFoundationModels us-east-1',
        checkedAt: '2026-11-20T10:05:46.000Z',
        reason: 'Bedrock answered 200',
        principal: 'arn:aws:iam::111122223333:user/svc-batch-summarizer',
      },
      sightings: {
        strings: 1,
        logEvents: 2,
        fingerprints: ['sha256:0123456789abcdef'],
        logEventIds: ['3762', '3763'],
      },
    },
  }),
  'leak, unverified candidates (not acted on)': decision({
    action: 'NOTIFY',
    applied: false,
    violations: [{ code: 'LEAKED', severity: 'critical', detail: 'unverified: Bedrock did not answer' }],
    trigger: { kind: 'leak' },
    leak: {
      fingerprint: 'sha256:fedcba9876543210',
      redacted: 'ABSK…abcd [sha256:fedcba9876543210]',
      location: {
        logGroup: 'keyguard scan',
        logStream: 'src/config.ts',
        logEventId: 'evt-1',
        timestamp: '2026-11-20T10:00:00.000Z',
        line: 3,
        column: 9,
      },
      candidates: ['ACCA2JFEEMBWZ6UGEI2CH', 'ACCA2JFEEMBWZ6UGEI2CJ'],
      issuer: null,
      issuerUnknownReason: 'region ap-south-2 did not answer',
    },
  }),
  'every violation code at once': decision({
    action: 'NOTIFY',
    applied: false,
    violations: VIOLATION_CODES.map((code) => ({ code, severity: 'low' as const, detail: `${code} detail` })),
  }),
};

describe('OCSF Detection Finding of each kind of decision', () => {
  it.each(Object.entries(KINDS))('%s: valid against the pinned OCSF 1.5.0 schema', (_kind, d) => {
    // Act
    const event = JSON.parse(ocsfJson(d, '0.1.0'));

    // Assess
    expect(ocsfProblems(event)).toEqual([]);
    expect(event.metadata.version).toBe(OCSF_EXTRACT.version);
    expect(event.metadata.version).toBe(OCSF_VERSION);
    expect(event.unmapped.keyguard).toEqual(JSON.parse(JSON.stringify(canonicalDecision(d))));
  });

  it('names the class, the key, its user and account, the product and the decision', () => {
    const e = ocsfDetectionFinding(KINDS['deactivate applied (enforce)'] as Decision, '1.2.3');

    expect(e).toMatchObject({
      class_uid: 2004,
      class_name: 'Detection Finding',
      category_uid: 2,
      time: Date.parse('2026-11-20T10:05:47.120Z'),
      metadata: {
        version: '1.5.0',
        profiles: ['cloud'],
        product: { name: 'bedrock-key-guard', vendor_name: 'bedrock-key-guard', version: '1.2.3' },
        uid: `bedrock-key-guard/${ACCOUNT}/ACCA2JFEEMBWZ6UGEI2CH/2026-11-20T10:05:44.000Z/event/0f1e2d3c`,
        event_code: 'CreateServiceSpecificCredential',
        correlation_uid: '0f1e2d3c',
      },
      cloud: { provider: 'AWS', account: { uid: ACCOUNT } },
      finding_info: { uid: `bedrock-key-guard/${ACCOUNT}/ACCA2JFEEMBWZ6UGEI2CH`, types: ['NEVER_EXPIRES'] },
      resources: [
        { uid: 'ACCA2JFEEMBWZ6UGEI2CH', type: 'Bedrock API key (long-term)' },
        { name: 'svc-batch-summarizer', type: 'AWS::IAM::User' },
      ],
      observables: [
        { name: 'resources[0].uid', type_id: 19, value: 'ACCA2JFEEMBWZ6UGEI2CH' },
        { name: 'resources[1].name', type_id: 4, value: 'svc-batch-summarizer' },
        { name: 'cloud.account.uid', type_id: 35, value: ACCOUNT },
      ],
      status_code: 'DEACTIVATE',
      status_detail: 'DEACTIVATE: applied',
    });
    expect(ocsfFindingUid({ accountId: ACCOUNT, keyId: 'ACCAX' })).toBe(`bedrock-key-guard/${ACCOUNT}/ACCAX`);
  });

  it('activity, status, severity and is_alert follow the key: open, still open, closed, approved', () => {
    const pick = (d: Decision) => {
      const e = ocsfDetectionFinding(d, '0.1.0');
      return [e.activity_name, e.status, e.severity, e.is_alert, e.type_uid];
    };
    expect(pick(KINDS['notify, first notice'] as Decision)).toEqual([
      'Create',
      'New',
      'Medium',
      true,
      200401,
    ]);
    expect(pick(KINDS['notify, reminder from a sweep'] as Decision)).toEqual([
      'Update',
      'New',
      'Medium',
      true,
      200402,
    ]);
    // A planned deactivation leaves the key usable: still open.
    expect(pick(KINDS['deactivate planned (audit)'] as Decision)).toEqual([
      'Create',
      'New',
      'High',
      true,
      200401,
    ]);
    // Deactivated by this decision, or no longer usable, or fixed: closed and resolved.
    expect(pick(KINDS['deactivate applied (enforce)'] as Decision)).toEqual([
      'Close',
      'Resolved',
      'High',
      false,
      200403,
    ]);
    expect(pick(KINDS['allow, inactive key with violations'] as Decision)[0]).toBe('Close');
    expect(pick(KINDS['allow, no violation (resolved)'] as Decision)).toEqual([
      'Close',
      'Resolved',
      'Informational',
      false,
      200403,
    ]);
    // Only approved violations left: suppressed.
    expect(pick(KINDS['allow, every violation approved'] as Decision).slice(0, 2)).toEqual([
      'Close',
      'Suppressed',
    ]);
    expect(pick(KINDS['reactivated without approval (critical)'] as Decision)[2]).toBe('Critical');
  });

  it('a reduced decision (decision events over 256 KB) stays valid and says it was truncated', () => {
    const { leak: _leak, ...reduced } = canonicalDecision(KINDS['leak, verified, deactivated'] as Decision);
    const e = ocsfDetectionFinding(
      { ...reduced, detailTruncated: { bytes: 300_000, omitted: ['leak'] } },
      '0.1.0',
    );

    expect(ocsfProblems(e)).toEqual([]);
    expect(e.unmapped.keyguard.detailTruncated).toEqual({ bytes: 300_000, omitted: ['leak'] });
    expect(e.unmapped.keyguard.leak).toBeUndefined();
  });
});

describe('the OCSF validator itself (so a pass means something)', () => {
  const good = () => JSON.parse(ocsfJson(KINDS['notify, first notice'] as Decision, '0.1.0'));

  it('refuses a missing required attribute, an unknown attribute, a bad enum and a wrong type', () => {
    const noUid = good();
    delete noUid.finding_info.uid;
    const extra = { ...good(), keyguard_action: 'NOTIFY' };
    const badEnum = { ...good(), severity_id: 7 };
    const badType = { ...good(), time: '2026-11-20T10:05:47.120Z' };
    const badObservable = good();
    badObservable.observables[0].type_id = 28;

    expect(ocsfProblems(noUid)).toEqual([
      expect.stringContaining("/finding_info: must have required property 'uid'"),
    ]);
    expect(ocsfProblems(extra)).toContain('/: must NOT have additional properties (keyguard_action)');
    expect(ocsfProblems(badEnum).join('\n')).toContain(
      '/severity_id: must be equal to one of the allowed values',
    );
    expect(ocsfProblems(badType)).toContain('/time: must be integer');
    expect(ocsfProblems(badObservable).join('\n')).toContain('/observables/0/type_id');
  });

  it('refuses cloud without the cloud profile, and the cloud profile without cloud', () => {
    const noProfile = good();
    noProfile.metadata.profiles = [];
    const noCloud = good();
    delete noCloud.cloud;

    expect(ocsfProblems(noProfile).length).toBeGreaterThan(0);
    expect(ocsfProblems(noCloud).join('\n')).toContain("must have required property 'cloud'");
  });

  it('refuses a type_uid that is not class_uid * 100 + activity_id, and a caption that is not its id', () => {
    const badType = { ...good(), type_uid: 200402 };
    const badCaption = { ...good(), severity: 'Low' };

    expect(ocsfProblems(badType)).toEqual(['/type_uid: 200402 is not class_uid * 100 + activity_id']);
    expect(ocsfProblems(badCaption)).toEqual(['/severity: "Low" is not the caption of severity_id 3']);
  });

  it('refuses an attribute whose object was not transcribed (it cannot be checked)', () => {
    expect(ocsfProblems({ ...good(), device: { name: 'x' } }).join('\n')).toContain('/device');
  });
});
