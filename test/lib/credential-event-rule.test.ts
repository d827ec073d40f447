import { CREDENTIAL_EVENTS, USER_ACCESS_EVENTS, USER_TAG_EVENTS } from '../../lambda/domain/cloudtrail';
import { CREDENTIAL_EVENT_PATTERN } from '../../lib/constructs/credential-event-rule';

describe('CREDENTIAL_EVENT_PATTERN', () => {
  test('routes every event the function classifies as relevant (and only IAM, successful calls)', () => {
    // Prepare
    const routed = new Set(CREDENTIAL_EVENT_PATTERN.detail.$or.flatMap((branch) => branch.eventName));
    // Act
    const missing = [...CREDENTIAL_EVENTS, ...USER_TAG_EVENTS, ...USER_ACCESS_EVENTS].filter(
      (n) => !routed.has(n),
    );
    // Assess
    expect(missing).toEqual([]);
    expect(CREDENTIAL_EVENT_PATTERN.detail.errorCode).toEqual([{ exists: false }]);
    expect(CREDENTIAL_EVENT_PATTERN.detail.eventSource).toEqual(['iam.amazonaws.com']);
  });

  test('routes UpdateAccessKey only when it activates a key', () => {
    // Act
    const branches = CREDENTIAL_EVENT_PATTERN.detail.$or.filter((b) =>
      (b.eventName as readonly string[]).includes('UpdateAccessKey'),
    );
    // Assess
    expect(branches).toEqual([{ eventName: ['UpdateAccessKey'], requestParameters: { status: ['Active'] } }]);
  });
});
