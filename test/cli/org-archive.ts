import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ACCOUNT, createKeyRecord, FULL_TAGS, tagUserRecord, tempDir, writeFile } from './helpers';

/**
 * An organization trail's S3 archive, generated in a temp dir: every member account's log files under
 * `AWSLogs/<org id>/<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/<account>_CloudTrail_<region>_<stamp>_<id>.json.gz`,
 * as CloudTrail delivers an organization trail, with the digest and Insights trees beside them.
 */

export const ORG_ID = 'o-a1b2c3d4e5';
/** The management account (its own trail files sit under the organization id too). */
export const MANAGEMENT = '111111111111';
export const MEMBER_A = '222222222222';
export const MEMBER_B = '333333333333';

type Json = Record<string, unknown>;

/** A record of the helpers' account rewritten as one recorded in `account` (recipient, caller and key alias). */
export function inAccount(record: Json, account: string): Json {
  const text = JSON.stringify(record).split(ACCOUNT).join(JSON.stringify(account).slice(1, -1));
  return JSON.parse(text) as Json;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Writes one log file of `account` where an organization trail puts it; returns its path below root. */
export function writeOrgLog(
  root: string,
  account: string,
  delivered: string,
  records: Json[],
  opts: { region?: string; unique?: string; org?: string } = {},
): string {
  const region = opts.region ?? 'us-east-1';
  const d = new Date(delivered);
  const [y, m, day, h, min] = [
    String(d.getUTCFullYear()),
    pad2(d.getUTCMonth() + 1),
    pad2(d.getUTCDate()),
    pad2(d.getUTCHours()),
    pad2(d.getUTCMinutes()),
  ];
  const name = `${account}_CloudTrail_${region}_${y}${m}${day}T${h}${min}Z_${opts.unique ?? 'Xk3Ff0aQ9uLhB2zT'}.json.gz`;
  const rel = join('AWSLogs', opts.org ?? ORG_ID, account, 'CloudTrail', region, y, m, day, name);
  writeFile(join(root, rel), gzipSync(JSON.stringify({ Records: records })));
  return rel;
}

/**
 * Three accounts of one organization, each with its own key events, under a bucket prefix:
 * - MANAGEMENT: `svc-shared` gets a 30-day key (ACCAORGMGMT000000001), then its owner tags: NOTIFY, ALLOW.
 * - MEMBER_A: `svc-shared` (the same user name, another account) gets a never-expiring key
 *   (ACCAORGMEMBERA000001): DEACTIVATE (planned, audit replay); `svc-a2` a 30-day key in eu-west-1's file of the
 *   next day (IAM events are recorded in us-east-1, but a file is a file): NOTIFY.
 * - MEMBER_B: `svc-b` gets a 30-day key (ACCAORGMEMBERB000001) and its tags: NOTIFY, ALLOW.
 * Plus each account's CloudTrail-Digest file and an Insights file, which hold no key events.
 */
export function orgArchive(): { root: string; dir: string } {
  const root = tempDir('keyguard-org-');
  const dir = join(root, 'org-trail-bucket');
  writeOrgLog(dir, MANAGEMENT, '2026-11-01T09:05:00Z', [
    inAccount(
      createKeyRecord('2026-11-01T09:01:00Z', 'svc-shared', 'ACCAORGMGMT000000001', { ageDays: 30 }),
      MANAGEMENT,
    ),
  ]);
  writeOrgLog(dir, MANAGEMENT, '2026-11-02T10:05:00Z', [
    inAccount(tagUserRecord('2026-11-02T10:00:00Z', 'svc-shared', FULL_TAGS), MANAGEMENT),
  ]);
  writeOrgLog(dir, MEMBER_A, '2026-11-01T12:05:00Z', [
    inAccount(createKeyRecord('2026-11-01T12:00:00Z', 'svc-shared', 'ACCAORGMEMBERA000001'), MEMBER_A),
  ]);
  writeOrgLog(
    dir,
    MEMBER_A,
    '2026-11-02T08:05:00Z',
    [
      inAccount(
        createKeyRecord('2026-11-02T08:00:00Z', 'svc-a2', 'ACCAORGMEMBERA000002', { ageDays: 30 }),
        MEMBER_A,
      ),
    ],
    { region: 'eu-west-1' },
  );
  writeOrgLog(dir, MEMBER_B, '2026-11-03T08:05:00Z', [
    inAccount(
      createKeyRecord('2026-11-03T08:00:00Z', 'svc-b', 'ACCAORGMEMBERB000001', { ageDays: 30 }),
      MEMBER_B,
    ),
    inAccount(tagUserRecord('2026-11-03T08:02:00Z', 'svc-b', FULL_TAGS), MEMBER_B),
  ]);
  for (const account of [MANAGEMENT, MEMBER_A, MEMBER_B]) {
    writeFile(
      join(
        dir,
        'AWSLogs',
        ORG_ID,
        account,
        'CloudTrail-Digest',
        'us-east-1',
        '2026',
        '11',
        '01',
        `${account}_CloudTrail-Digest_us-east-1_org-trail_us-east-1_20261101T090500Z.json.gz`,
      ),
      gzipSync('{"awsAccountId":"x","digestStartTime":"2026-11-01T08:05:00Z"}'),
    );
  }
  writeFile(
    join(
      dir,
      'AWSLogs',
      ORG_ID,
      MEMBER_B,
      'CloudTrail-Insight',
      'us-east-1',
      '2026',
      '11',
      '03',
      `${MEMBER_B}_CloudTrail-Insight_us-east-1_20261103T0900Z_Ab12Cd34Ef56Gh78.json.gz`,
    ),
    gzipSync(
      JSON.stringify({
        Records: [
          {
            eventVersion: '1.08',
            eventTime: '2026-11-03T08:30:00Z',
            awsRegion: 'us-east-1',
            eventID: 'i0000000-0000-4000-8000-000000000001',
            eventType: 'AwsCloudTrailInsight',
            recipientAccountId: MEMBER_B,
            sharedEventID: 'i0000000-0000-4000-8000-000000000002',
            insightDetails: {
              state: 'Start',
              eventSource: 'iam.amazonaws.com',
              eventName: 'CreateServiceSpecificCredential',
              insightType: 'ApiCallRateInsight',
            },
            eventCategory: 'Insight',
          },
        ],
      }),
    ),
  );
  return { root, dir };
}
