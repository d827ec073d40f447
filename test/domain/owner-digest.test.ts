import { evaluate } from '../../lambda/domain/evaluate';
import {
  buildAccountSummary,
  buildOwnerDigest,
  DIGEST_BODY_MAX_BYTES,
  isImmediateNotice,
  SUMMARY_KEYS_MAX,
  type SummaryKey,
} from '../../lambda/domain/owner-digest';
import type { Decision, KeySnapshot } from '../../lambda/domain/types';
import { parseConfig, policyVersion } from '../../lambda/shared/config';

const DAY = 86_400_000;
const NOW = new Date('2026-11-20T10:00:00.000Z');
const config = parseConfig({ fallbackOwner: 'security@example.com' });
const OWNER = 'alice@example.com';

function key(i: number, overrides: Partial<KeySnapshot> = {}): KeySnapshot {
  return {
    keyId: `ACCAEXAMPLEKEY${String(i).padStart(7, '0')}`,
    userName: `svc-${i}`,
    accountId: '111122223333',
    status: 'Active',
    createdAt: NOW.toISOString(),
    expiresAt: new Date(NOW.getTime() + 30 * DAY).toISOString(),
    userTags: { owner: OWNER, purpose: 'chatbot', 'review-cadence': '90d' },
    creator: null,
    ...overrides,
  };
}

function decide(k: KeySnapshot, notice: Decision['notice'] = 'first', deadline?: string): Decision {
  const d = evaluate(k, {
    config,
    policyVersion: policyVersion(config),
    now: NOW,
    trigger: { kind: 'sweep', eventId: 'sweep-1', eventTime: NOW.toISOString() },
    decisionId: `${NOW.toISOString()}/sweep/sweep-1`,
  });
  return { ...d, notice, noticeDigest: 'digest/sweep-1', ...(deadline ? { deadline } : {}) };
}

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

describe('buildOwnerDigest', () => {
  it('lists keys worst first: severity, then the soonest deadline, resolved last', () => {
    // Prepare
    const soon = new Date(NOW.getTime() + DAY).toISOString();
    const later = new Date(NOW.getTime() + 2 * DAY).toISOString();
    const noPurpose = { owner: OWNER, 'review-cadence': '90d' };
    const decisions = [
      decide(key(1, { userTags: noPurpose }), 'first', later),
      decide(key(2, { expiresAt: null }), 'action'),
      decide(key(3), 'resolved'),
      decide(key(4, { userTags: noPurpose }), 'reminder', soon),
    ];
    // Act
    const { notice, listed, omitted } = buildOwnerDigest({
      owner: OWNER,
      accountId: '111122223333',
      digestId: 'digest/sweep-1',
      decisions,
      config,
    });
    // Assess
    const order = [...notice.body.matchAll(/ACCAEXAMPLEKEY(\d{7})\b/g)].map((m) => Number(m[1]));
    expect([...new Set(order)]).toEqual([2, 4, 1, 3]);
    expect(notice.body).toContain(`[LOW] reminder: Bedrock API key ACCAEXAMPLEKEY0000004`);
    expect(notice.body).toContain(`  By: ${soon} (after that the key will be reported for deactivation)`);
    expect(notice.subject).toBe(
      '[keyguard] HIGH: 3 Bedrock API keys of yours need action (account 111122223333)',
    );
    expect(notice.attributes).toEqual({
      owner: OWNER,
      severity: 'high',
      action: 'DEACTIVATE',
      account: '111122223333',
    });
    expect({ listed, omitted }).toEqual({ listed: 4, omitted: 0 });
  });

  it('stays within the SNS message limit: the worst keys listed, "… and N more keys" for the rest', () => {
    // Prepare: 1,000 keys with long, multi-byte user names (bytes, not characters, count)
    const noPurpose = { owner: OWNER, 'review-cadence': '90d' };
    const decisions = Array.from({ length: 1000 }, (_, i) => {
      const userName = `svc-${i}-${'é'.repeat(58)}`;
      // One in ten never expires (high), the others lack a purpose tag (low).
      const k =
        i % 10 === 0 ? key(i, { userName, expiresAt: null }) : key(i, { userName, userTags: noPurpose });
      return decide(k, 'first');
    });
    // Act
    const built = buildOwnerDigest({
      owner: OWNER,
      accountId: '111122223333',
      digestId: 'digest/sweep-1',
      decisions,
      notLoaded: 500,
      config,
    });
    // Assess
    expect(bytes(built.notice.body)).toBeLessThanOrEqual(DIGEST_BODY_MAX_BYTES);
    expect(bytes(built.notice.body)).toBeGreaterThan(DIGEST_BODY_MAX_BYTES - 4096);
    expect(built.listed).toBeGreaterThan(50);
    expect(built.listed + built.omitted).toBe(1500);
    expect(built.notice.body).toContain(`… and ${built.omitted} more keys`);
    expect(built.notice.body).toContain(`keyguard audit --owner ${OWNER}`);
    // The never-expiring keys (high) come first.
    expect(built.notice.body.indexOf('[HIGH]')).toBeLessThan(built.notice.body.indexOf('[LOW]'));
  });

  it('truncates at any smaller budget and keeps the subject short, printable ASCII, on one line', () => {
    // Prepare: an owner value with a newline and non-ASCII characters
    const owner = `équipe\nsécurité ${'x'.repeat(200)}`;
    const decisions = Array.from({ length: 30 }, (_, i) => decide(key(i), 'first'));
    for (const maxBytes of [2_000, 5_000, 20_000]) {
      // Act
      const built = buildOwnerDigest({
        owner,
        accountId: '111122223333',
        digestId: 'd',
        decisions,
        config,
        maxBytes,
      });
      // Assess
      expect(bytes(built.notice.body)).toBeLessThanOrEqual(maxBytes);
      expect(built.listed + built.omitted).toBe(30);
      expect(built.notice.subject.length).toBeLessThan(100);
      expect(built.notice.subject).toMatch(/^[\x20-\x7e]+$/);
      // The owner's newline is shown escaped, never as a line of its own.
      expect(built.notice.body).not.toMatch(/^sécurité/m);
    }
  });
});

describe('buildAccountSummary', () => {
  it('counts every key and owner and stays bounded for a 20,000-key account', () => {
    // Prepare
    const keys: SummaryKey[] = Array.from({ length: 20_000 }, (_, i) => ({
      keyId: `ACCAEXAMPLEKEY${String(i).padStart(7, '0')}`,
      userName: `svc-${i}-${'x'.repeat(50)}`,
      owner: `team-${i % 5000}@example.com`,
      codes: i % 3 === 0 ? ['NEVER_EXPIRES'] : ['MISSING_PURPOSE'],
      kind: i % 3 === 0 ? 'action' : 'first',
      severity: i % 3 === 0 ? 'high' : 'low',
      deadline: i % 3 === 0 ? null : new Date(NOW.getTime() + 3 * DAY).toISOString(),
      action: i % 3 === 0 ? 'DEACTIVATE' : 'NOTIFY',
    }));
    // Act
    const built = buildAccountSummary({
      accountId: '111122223333',
      digestId: 'summary/sweep-1',
      keys,
      config,
      keysSeen: 20_000,
    });
    // Assess
    const body = built.notice.body;
    expect(bytes(body)).toBeLessThanOrEqual(DIGEST_BODY_MAX_BYTES);
    expect(body).toContain('Keys per violation:\n  MISSING_PURPOSE: 13333\n  NEVER_EXPIRES: 6667\n');
    expect(body).toContain('Keys per owner (5000 owners):');
    expect(body).toContain('  … and 4900 more owners');
    expect(built.listed).toBe(SUMMARY_KEYS_MAX);
    expect(body).toContain(`… and ${20_000 - SUMMARY_KEYS_MAX} more keys`);
    expect(
      body
        .split('\n')
        .filter((l) => l.startsWith('  ['))
        .every((l) => l.startsWith('  [HIGH]')),
    ).toBe(true);
    expect(built.notice.attributes.owner).toBe('security@example.com');
  });
});

describe('isImmediateNotice', () => {
  it('is true for an applied deactivation, a leak and a reactivation without approval, false otherwise', () => {
    const base = decide(key(1, { expiresAt: null }), 'action');
    expect(isImmediateNotice(base)).toBe(false);
    expect(isImmediateNotice({ ...base, applied: true })).toBe(true);
    for (const code of ['LEAKED', 'REACTIVATED_WITHOUT_APPROVAL'] as const) {
      expect(isImmediateNotice({ ...base, violations: [{ code, severity: 'critical', detail: 'x' }] })).toBe(
        true,
      );
    }
  });
});

describe('digests of hostile tag values and user names', () => {
  // Owners, purposes and user names are whatever someone typed into IAM: terminal escapes, newlines that would
  // forge a line of the message, bidi overrides, NUL. Every one reaches the message as visible text.
  const HOSTILE = `mallory\u001b[2J\r\nKey: ACCAFORGEDLINE\u202etxt.exe\u0000`;
  // C0 controls but newline, DEL and C1, bidi embeddings, overrides and isolates.
  const raw = (text: string) =>
    [...text].filter((c) => {
      const code = c.codePointAt(0) ?? 0;
      return (
        (code < 0x20 && code !== 0x0a) ||
        (code >= 0x7f && code <= 0x9f) ||
        (code >= 0x202a && code <= 0x202e) ||
        (code >= 0x2066 && code <= 0x2069)
      );
    });

  it('an owner digest holds no raw control or bidi character, and no forged line', () => {
    // Prepare
    const decisions = [decide(key(1, { userName: HOSTILE, userTags: { owner: HOSTILE, purpose: HOSTILE } }))];
    // Act
    const { notice } = buildOwnerDigest({
      owner: HOSTILE,
      accountId: '111122223333',
      digestId: 'digest/sweep-1',
      decisions,
      config,
    });
    // Assess
    expect(raw(notice.body)).toEqual([]);
    expect(notice.body.split('\n').some((l) => l.startsWith('Key: ACCAFORGEDLINE'))).toBe(false);
    expect(notice.subject).toMatch(/^[\x20-\x7e]{1,99}$/);
  });

  it('the first-deployment summary holds no raw control or bidi character, and no forged line', () => {
    // Prepare
    const keys: SummaryKey[] = [
      {
        keyId: 'ACCAEXAMPLEKEY0000001',
        userName: HOSTILE,
        owner: HOSTILE,
        codes: ['NEVER_EXPIRES'],
        kind: 'action',
        severity: 'high',
        deadline: null,
        action: 'DEACTIVATE',
      },
    ];
    // Act
    const { notice } = buildAccountSummary({
      accountId: '111122223333',
      digestId: 'summary/sweep-1',
      keys,
      config,
      keysSeen: 1,
    });
    // Assess
    expect(raw(notice.body)).toEqual([]);
    expect(notice.body.split('\n').some((l) => l.startsWith('Key: ACCAFORGEDLINE'))).toBe(false);
    expect(notice.subject).toMatch(/^[\x20-\x7e]{1,99}$/);
  });
});
