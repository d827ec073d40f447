import { getToken } from '@aws/bedrock-token-generator';

/**
 * Short-term Bedrock API keys for tests: made by AWS's own generator from fake static credentials with a fixed
 * clock (offline: signing is local), or hand-built to the documented format so that each field can be varied.
 */

export const FAKE_CREDENTIALS = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};

export const FAKE_SESSION_CREDENTIALS = {
  accessKeyId: 'ASIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  sessionToken: `IQoJb3JpZ2luX2VjEXAMPLE/${'FwoGZXIvYXdzEXAMPLE+'.repeat(24)}==`,
};

/** Runs `getToken` with only `Date` faked, so its signature time is `signedAt`. */
export async function generatedShortTermKey(opts: {
  signedAt: string;
  region?: string;
  expiresInSeconds?: number;
  session?: boolean;
}): Promise<string> {
  jest.useFakeTimers({
    now: new Date(opts.signedAt),
    doNotFake: [
      'hrtime',
      'nextTick',
      'performance',
      'queueMicrotask',
      'requestAnimationFrame',
      'cancelAnimationFrame',
      'requestIdleCallback',
      'cancelIdleCallback',
      'setImmediate',
      'clearImmediate',
      'setInterval',
      'clearInterval',
      'setTimeout',
      'clearTimeout',
    ],
  });
  try {
    return await getToken({
      credentials: opts.session ? FAKE_SESSION_CREDENTIALS : FAKE_CREDENTIALS,
      region: opts.region ?? 'us-west-2',
      ...(opts.expiresInSeconds ? { expiresInSeconds: opts.expiresInSeconds } : {}),
    });
  } finally {
    jest.useRealTimers();
  }
}

export interface ShortTermParts {
  host: string;
  action: string;
  algorithm: string;
  credential: string;
  date: string;
  expires: string;
  signature: string;
  version: string;
  sessionToken?: string;
}

export const DEFAULT_PARTS: ShortTermParts = {
  host: 'bedrock.amazonaws.com',
  action: 'CallWithBearerToken',
  algorithm: 'AWS4-HMAC-SHA256',
  credential: 'AKIAI44QH8DHBEXAMPLE/20261120/eu-west-1/bedrock/aws4_request',
  date: '20261120T093102Z',
  expires: '3600',
  signature: 'a'.repeat(16) + '0123456789abcdef'.repeat(3),
  version: '1',
};

/** `bedrock-api-key-` + base64 of a presigned URL built from `parts`, in the generator's parameter order. */
export function handBuiltShortTermKey(over: Partial<ShortTermParts> = {}): string {
  const p = { ...DEFAULT_PARTS, ...over };
  const url =
    `${p.host}/?Action=${p.action}&X-Amz-Algorithm=${p.algorithm}` +
    `&X-Amz-Credential=${encodeURIComponent(p.credential)}&X-Amz-Date=${p.date}&X-Amz-Expires=${p.expires}` +
    (p.sessionToken ? `&X-Amz-Security-Token=${encodeURIComponent(p.sessionToken)}` : '') +
    `&X-Amz-SignedHeaders=host&X-Amz-Signature=${p.signature}&Version=${p.version}`;
  return `bedrock-api-key-${Buffer.from(url).toString('base64')}`;
}

/** `ABSK` + base64(`<alias>:<secret>`) for any user name and account (fakeLongTermKey fixes the user shape). */
export function handBuiltLongTermKey(userName: string, account: string, secret: string): string {
  return `ABSK${Buffer.from(`${userName}-at-${account}:${secret}`).toString('base64')}`;
}
