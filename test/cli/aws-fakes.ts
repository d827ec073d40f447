import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers';

/**
 * Real SDK clients whose HTTP layer answers from a table (or throws a Node network error): the SDK's own
 * deserialisers build the exceptions, so tests see exactly the error shapes AWS produces. No network.
 */

/** Test credentials for a client (never real). */
export const TEST_CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'test-secret' };

export interface FakeAnswer {
  status: number;
  body: string;
  contentType?: string;
}

/** A requestHandler answering every request with `answer` (or throwing it, for a network error). */
export function fakeHandler(answer: FakeAnswer | Error): {
  handle: () => Promise<{ response: unknown }>;
} {
  return {
    handle: async () => {
      if (answer instanceof Error) throw answer;
      return {
        response: {
          statusCode: answer.status,
          reason: undefined,
          headers: { 'content-type': answer.contentType ?? 'text/xml' },
          body: new TextEncoder().encode(answer.body),
        },
      };
    },
  };
}

/** An awsQuery (IAM, STS, CloudFormation) error document. */
export function queryError(code: string, message: string): FakeAnswer {
  return {
    status: 400,
    body: `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`,
  };
}

/** An awsJson (DynamoDB, Organizations) error document. */
export function jsonError(status: number, type: string, message: string): FakeAnswer {
  return {
    status,
    contentType: 'application/x-amz-json-1.0',
    body: JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message }),
  };
}

/** A Node DNS failure as the SDK's HTTP handler throws it. */
export function dnsFailure(host: string): Error {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), {
    code: 'ENOTFOUND',
    errno: -3008,
    syscall: 'getaddrinfo',
    hostname: host,
  });
}

const CREDENTIAL_ENV = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_PROFILE',
  'AWS_DEFAULT_PROFILE',
  'AWS_WEB_IDENTITY_TOKEN_FILE',
  'AWS_ROLE_ARN',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONFIG_FILE',
  'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_EC2_METADATA_DISABLED',
];

/**
 * Runs `fn` with no credentials anywhere the SDK's default chain looks: empty config and credentials files, no
 * credential variables, the instance metadata service disabled (so nothing touches the network). `configText`
 * goes into the config file (e.g. a profile without credentials). The environment is restored afterwards.
 */
export async function withoutCredentials<T>(fn: () => Promise<T>, configText = ''): Promise<T> {
  const dir = tempDir('keyguard-nocreds-');
  const config = join(dir, 'config');
  const credentials = join(dir, 'credentials');
  writeFileSync(config, configText);
  writeFileSync(credentials, '');
  const saved = new Map(CREDENTIAL_ENV.map((k) => [k, process.env[k]]));
  for (const k of CREDENTIAL_ENV) delete process.env[k];
  process.env.AWS_CONFIG_FILE = config;
  process.env.AWS_SHARED_CREDENTIALS_FILE = credentials;
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
