import {
  BedrockKeyProbe,
  classifyAnswer,
  type FetchLike,
  PROBE_USER_AGENT,
} from '../../lambda/adapters/bedrock-key-probe';
import type { KeyCandidate } from '../../lambda/domain/leak-verification';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';

const NOW = new Date('2026-11-20T10:00:00Z');
const ACCOUNT = '111122223333';
const USER = 'svc-chatbot';
const KEY = fakeLongTermKey('probe');
const LONG: KeyCandidate = { kind: 'LONG_TERM', key: KEY, accountId: ACCOUNT, userName: USER };
const SHORT_KEY = fakeShortTermKey('probe');
const SHORT: KeyCandidate = { kind: 'SHORT_TERM', key: SHORT_KEY, region: 'eu-central-1' };

interface Seen {
  url: string;
  init: RequestInit;
  headers: Headers;
}

/** A fetch that answers once, as given, and records the request (no network). */
function answering(status: number, body: string, headers: Record<string, string> = {}) {
  const seen: Seen[] = [];
  const fetch: FetchLike = async (url, init) => {
    seen.push({ url, init, headers: new Headers(init.headers) });
    return new Response(status === 204 ? null : body, { status, headers });
  };
  return { fetch, seen };
}

function probe(fetch: FetchLike, timeoutMs = 3000): BedrockKeyProbe {
  return new BedrockKeyProbe({ region: 'us-east-1', fetch, timeoutMs, now: () => NOW });
}

describe('BedrockKeyProbe: the request', () => {
  it('is one GET ListFoundationModels in the configured region, carrying the key as its only credential', async () => {
    // Prepare
    const { fetch, seen } = answering(200, '{"modelSummaries":[]}');
    // Act
    const v = await probe(fetch).verify(LONG);
    // Assess
    expect(seen).toHaveLength(1);
    const [req] = seen;
    expect(req?.url).toBe('https://bedrock.us-east-1.amazonaws.com/foundation-models');
    expect(req?.init.method).toBe('GET');
    expect(req?.init.redirect).toBe('error');
    expect(req?.init.body).toBeUndefined();
    expect(req?.headers.get('authorization')).toBe(`Bearer ${KEY}`);
    expect(req?.headers.get('user-agent')).toBe(PROBE_USER_AGENT);
    // No SigV4, no session token: the function's own credentials are never sent
    expect([...(req?.headers.keys() ?? [])].sort()).toEqual(['accept', 'authorization', 'user-agent']);
    expect(req?.init.signal).toBeInstanceOf(AbortSignal);
    expect(v).toEqual({
      result: 'VERIFIED',
      method: 'bedrock:ListFoundationModels us-east-1',
      checkedAt: NOW.toISOString(),
      reason: 'HTTP 200: the key authenticated',
      principal: null,
    });
  });

  it('verifies a short-term key in the region it was signed for', async () => {
    const { fetch, seen } = answering(200, '{}');

    const v = await probe(fetch).verify(SHORT);

    expect(seen[0]?.url).toBe('https://bedrock.eu-central-1.amazonaws.com/foundation-models');
    expect(v.method).toBe('bedrock:ListFoundationModels eu-central-1');
  });

  it('makes no call for a region that is not a region name', async () => {
    const { fetch, seen } = answering(200, '{}');

    const v = await probe(fetch).verify({ ...SHORT, region: 'evil.example.com/x?' });

    expect(seen).toEqual([]);
    expect(v.result).toBe('UNVERIFIED');
    expect(v.reason).toContain('no call made');
  });

  it.each([['zz-fake-1'], ['cn-north-1'], ['us-gov-west-1']])(
    'makes no call for %s, shaped as a region but not one of the aws partition (a forged token names any)',
    async (region) => {
      const { fetch, seen } = answering(200, '{}');

      const v = await probe(fetch).verify({ ...SHORT, region });

      expect(seen).toEqual([]);
      expect(v.result).toBe('UNVERIFIED');
      expect(v.reason).toContain('no call made');
    },
  );
});

describe('BedrockKeyProbe: what each answer means', () => {
  it.each([
    [
      'the documented answer to a bad key',
      403,
      '{"Message":"Authentication failed: Please make sure your API Key is valid."}',
      {},
      'REJECTED',
    ],
    [
      'a malformed key',
      403,
      '{"Message":"Invalid API Key format: Must start with pre-defined prefix"}',
      {},
      'REJECTED',
    ],
    [
      'an unrecognized token',
      403,
      '{"message":"The security token included in the request is invalid."}',
      { 'x-amzn-ErrorType': 'UnrecognizedClientException:http://internal.amazon.com/coral/' },
      'REJECTED',
    ],
    [
      'an expired token',
      400,
      '{"message":"Token expired"}',
      { 'x-amzn-ErrorType': 'ExpiredTokenException' },
      'REJECTED',
    ],
    [
      'the key user denied this action (names the user)',
      403,
      `{"message":"User: arn:aws:iam::${ACCOUNT}:user/${USER} is not authorized to perform: bedrock:ListFoundationModels because no identity-based policy allows the bedrock:ListFoundationModels action"}`,
      { 'x-amzn-ErrorType': 'AccessDeniedException' },
      'VERIFIED',
    ],
    [
      'the key user denied bearer tokens (401, user on a path)',
      401,
      `{"Message":"User: arn:aws:iam::${ACCOUNT}:user/keys/bedrock/${USER} is not authorized to perform: bedrock:CallWithBearerToken on resource: * with an explicit deny in a service control policy"}`,
      {},
      'VERIFIED',
    ],
    [
      'a denial naming another user',
      403,
      `{"message":"User: arn:aws:iam::${ACCOUNT}:user/someone-else is not authorized to perform: bedrock:ListFoundationModels"}`,
      { 'x-amzn-ErrorType': 'AccessDeniedException' },
      'UNVERIFIED',
    ],
    [
      'a denial naming the same user in another account',
      403,
      `{"message":"User: arn:aws:iam::444455556666:user/${USER} is not authorized to perform: bedrock:ListFoundationModels"}`,
      {},
      'UNVERIFIED',
    ],
    [
      'a denial naming no principal',
      403,
      '{"message":"You don\'t have access to the model with the specified model ID."}',
      { 'x-amzn-ErrorType': 'AccessDeniedException' },
      'UNVERIFIED',
    ],
    [
      'a missing header (our bug, not the key)',
      403,
      '{"Message":"Authorization header is missing"}',
      {},
      'UNVERIFIED',
    ],
    [
      'throttling',
      429,
      '{"message":"Too many requests"}',
      { 'x-amzn-ErrorType': 'ThrottlingException' },
      'UNVERIFIED',
    ],
    ['a server error', 500, '{"message":"Internal failure"}', {}, 'UNVERIFIED'],
    ['a 503 HTML page', 503, '<html>Service Unavailable</html>', {}, 'UNVERIFIED'],
    [
      'a validation error',
      400,
      '{"message":"1 validation error"}',
      { 'x-amzn-ErrorType': 'ValidationException' },
      'UNVERIFIED',
    ],
  ])('%s (HTTP %i)', async (_label, status, body, headers, expected) => {
    // Prepare
    const { fetch } = answering(status, body, headers);
    // Act
    const v = await probe(fetch).verify(LONG);
    // Assess
    expect(v.result).toBe(expected);
    expect(v.reason).toContain(`HTTP ${status}`);
    expect(leakedFragments(JSON.stringify(v), [KEY])).toEqual([]);
  });

  it('records the principal a denial names', async () => {
    const arn = `arn:aws:iam::${ACCOUNT}:user/${USER}`;
    const { fetch } = answering(
      403,
      `{"message":"User: ${arn} is not authorized to perform: bedrock:ListFoundationModels"}`,
    );

    const v = await probe(fetch).verify(LONG);

    expect(v).toMatchObject({ result: 'VERIFIED', principal: arn });
  });

  it('takes any authenticated principal for a short-term key (its signer)', () => {
    const arn = `arn:aws:sts::${ACCOUNT}:assumed-role/ChatbotRuntime/i-0abc`;
    const c = classifyAnswer(
      {
        status: 403,
        errorType: 'AccessDeniedException',
        message: `User: ${arn} is not authorized to perform: x`,
      },
      { kind: 'SHORT_TERM' },
    );
    expect(c).toMatchObject({ result: 'VERIFIED', principal: arn });
  });

  it('never keeps key material or control characters from the answer', async () => {
    const { fetch } = answering(418, JSON.stringify({ message: `odd \u202Eanswer\u001b[2J echoing ${KEY}` }));

    const v = await probe(fetch).verify(LONG);

    expect(v.result).toBe('UNVERIFIED');
    expect(leakedFragments(v.reason, [KEY])).toEqual([]);
    expect(v.reason).not.toMatch(/[\p{Cc}\u202e]/u);
  });

  it('reads at most 4 KiB of an error answer', async () => {
    const { fetch } = answering(403, `{"Message":"Authentication failed"${' '.repeat(1_000_000)}}`);

    const v = await probe(fetch).verify(LONG);

    // The cut answer is not JSON: its text is read as the message, still telling
    expect(v.result).toBe('REJECTED');
  });
});

describe('BedrockKeyProbe: no answer', () => {
  it('is UNVERIFIED when the endpoint does not answer in time (the timeout ends the call)', async () => {
    // Prepare: a fetch that only ends when its signal aborts
    const fetch: FetchLike = (_url, init) =>
      new Promise((_resolve, reject) => {
        init.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      });
    // Act
    const v = await probe(fetch, 50).verify(LONG);
    // Assess
    expect(v.result).toBe('UNVERIFIED');
    expect(v.reason).toBe('no answer within 50 ms: TimeoutError');
  });

  it('is UNVERIFIED on a network error, naming its code but never its message (it may echo the header)', async () => {
    const fetch: FetchLike = async () => {
      throw new TypeError(`fetch failed for header authorization: Bearer ${KEY}`, {
        cause: Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }),
      });
    };

    const v = await probe(fetch).verify(LONG);

    expect(v).toMatchObject({
      result: 'UNVERIFIED',
      reason: 'no answer within 3000 ms: TypeError (ENOTFOUND)',
    });
    expect(leakedFragments(JSON.stringify(v), [KEY])).toEqual([]);
  });
});
