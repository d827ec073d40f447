import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { CliIO } from '../../lambda/cli/io';
import type { Decision } from '../../lambda/domain/types';

export const REPO = join(__dirname, '..', '..');
export const EXAMPLES = join(REPO, 'examples');

/** An in-memory CliIO: what a command wrote to stdout and stderr. */
export function captureIO(cwd: string): { io: CliIO; stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  return {
    io: {
      cwd,
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    },
    stdout: () => out,
    stderr: () => err,
  };
}

const made: string[] = [];

/** A fresh temporary directory, removed by `removeTempDirs()`. */
export function tempDir(prefix = 'keyguard-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function writeFile(path: string, content: string | Buffer): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  return path;
}

export function jsonLines(text: string): Decision[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Decision);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** Every record in the example CloudTrail files, read independently of the CLI (to check it). */
export function exampleRecords(): Array<Record<string, unknown>> {
  return filesUnder(join(EXAMPLES, 'cloudtrail')).flatMap((f) => {
    const buf = readFileSync(f);
    const text = (f.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8');
    return (JSON.parse(text) as { Records: Array<Record<string, unknown>> }).Records;
  });
}

export const ACCOUNT = '111122223333';
export const ADMIN_ARN = `arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/alice@example.com`;

let counter = 0;
/** A short, realistic IAM CloudTrail record; `over` replaces any field. */
export function iamRecord(
  eventName: string,
  eventTime: string,
  requestParameters: Record<string, unknown> | null,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  counter += 1;
  return {
    eventVersion: '1.11',
    userIdentity: {
      type: 'AssumedRole',
      principalId: 'AROAEXAMPLEPLATFORM1:alice@example.com',
      arn: ADMIN_ARN,
      accountId: ACCOUNT,
    },
    eventTime,
    eventSource: 'iam.amazonaws.com',
    eventName,
    awsRegion: 'us-east-1',
    sourceIPAddress: '203.0.113.24',
    userAgent: 'aws-cli/2.22.4',
    requestParameters,
    responseElements: null,
    requestID: `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`,
    eventID: `e0000000-0000-4000-8000-${String(counter).padStart(12, '0')}`,
    readOnly: false,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT,
    eventCategory: 'Management',
    ...over,
  };
}

/** A CreateServiceSpecificCredential record for a Bedrock key. */
export function createKeyRecord(
  eventTime: string,
  userName: string,
  keyId: string,
  opts: { ageDays?: number; expirationDate?: string; secret?: string } = {},
): Record<string, unknown> {
  // IAM sets the expiry from CredentialAgeDays; without either the key never expires.
  const expirationDate =
    opts.expirationDate ??
    (opts.ageDays !== undefined
      ? new Date(Date.parse(eventTime) + opts.ageDays * 86_400_000).toISOString()
      : undefined);
  return iamRecord(
    'CreateServiceSpecificCredential',
    eventTime,
    {
      userName,
      serviceName: 'bedrock.amazonaws.com',
      ...(opts.ageDays !== undefined ? { credentialAgeDays: opts.ageDays } : {}),
    },
    {
      responseElements: {
        serviceSpecificCredential: {
          createDate: eventTime,
          ...(expirationDate ? { expirationDate } : {}),
          serviceName: 'bedrock.amazonaws.com',
          serviceCredentialAlias: `${userName}-at-${ACCOUNT}`,
          ...(opts.secret ? { serviceCredentialSecret: opts.secret } : {}),
          serviceSpecificCredentialId: keyId,
          userName,
          status: 'Active',
        },
      },
    },
  );
}

export function tagUserRecord(eventTime: string, userName: string, tags: Record<string, string>) {
  return iamRecord('TagUser', eventTime, {
    userName,
    tags: Object.entries(tags).map(([key, value]) => ({ key, value })),
  });
}

export const FULL_TAGS = { owner: 'team@example.com', purpose: 'tests', 'review-cadence': '90d' };
