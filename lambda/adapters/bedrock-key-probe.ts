import type { KeyCandidate, LeakVerifier } from '../domain/leak-verification';
import type { LeakVerification, LeakVerificationResult } from '../domain/types';
import { redactSecrets } from '../shared/redact';
import { COMMERCIAL_REGIONS } from './cloudtrail-issuers';

/**
 * Asks Amazon Bedrock whether a found key is a working key, the way secret scanners verify a token before
 * reporting it live: one harmless call authenticated by the key itself.
 *
 * The call: `GET https://bedrock.<region>.amazonaws.com/foundation-models` (ListFoundationModels) with
 * `Authorization: Bearer <key>`. API keys work with Amazon Bedrock and Bedrock Runtime actions (Bedrock user
 * guide, "API keys reference": only the bidirectional stream, Agents and Data Automation are excluded), and this
 * one is read-only, free, needs no model id and no model access, and changes nothing. Every answer the service
 * can only give after it authenticated the key counts as VERIFIED: a 2xx, or an AccessDenied that names the key's
 * own user ("User: arn:aws:iam::<account>:user/<name> is not authorized to perform: ..."; a key whose user may
 * not call this action or bedrock:CallWithBearerToken still proves its secret). Bedrock's answer to a key that
 * does not authenticate is a 403 "Authentication failed: Please make sure your API Key is valid." (an invalid
 * secret, or an inactive, expired or deleted key), or "Invalid API Key format": REJECTED. Anything else
 * (timeout, network error, throttling, 5xx, a denial naming no principal or another one, any other answer) is
 * UNVERIFIED: it cannot tell, and only a person (or `leakDetection.deactivateUnverified`) acts on it.
 *
 * Plain `fetch`, not an AWS SDK client, on purpose: the request carries exactly one credential, the found key.
 * The SDK's Bedrock clients try SigV4 before bearer auth and, in a Lambda function, would sign with the
 * function's own role when the token is not picked (aws-sdk-js-v3 #7204; continuedev/continue #12212): a probe
 * must never authenticate as anyone but the key. It also keeps the function free of any IAM permission for it
 * (it needs none) and adds no dependency. One attempt, no retries, a short timeout; the key is never logged,
 * stored or returned, and no error message of the HTTP stack is kept (some echo header values).
 *
 * The call is recorded by CloudTrail like any use of the key (eventName ListFoundationModels,
 * callWithBearerToken, user agent `bedrock-key-guard/leak-verification`), so keyguard's usage flow also sees it.
 */

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface BedrockKeyProbeOptions {
  /** Region whose Bedrock endpoint verifies long-term keys (a short-term key is verified in its own region). */
  region: string;
  /** @default globalThis.fetch */
  fetch?: FetchLike;
  /** Whole call, answer included. @default 3000 */
  timeoutMs?: number;
  now?: () => Date;
}

export const PROBE_USER_AGENT = 'bedrock-key-guard/leak-verification';
export const DEFAULT_PROBE_TIMEOUT_MS = 3000;
/** Error answers are small; more is not read. */
const MAX_ANSWER_BYTES = 4096;
/** The shape of region names (also what a short-term key's credential scope was checked against). */
const REGION = /^[a-z]{2,4}(?:-[a-z]+)+-\d{1,2}$/;
const PRINCIPAL = /\bUser: (arn:aws[a-z-]*:(?:iam|sts)::\d{12}:[\w+=,.@/-]+)/;
const ANY_PRINCIPAL =
  /\b(arn:aws[a-z-]*:(?:iam|sts)::\d{12}:(?:user|assumed-role|role|federated-user)\/[\w+=,.@/-]+)/;
/** What Bedrock (and the AWS front door) say about a bearer token that does not authenticate. */
const AUTH_FAILED = [
  /authentication failed/i,
  /api key is (?:not )?valid/i,
  /invalid api key/i,
  /security token included in the request is (?:invalid|expired)/i,
  /(?:bearer )?token (?:has )?expired/i,
];
const AUTH_FAILED_TYPES = new Set([
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'ExpiredTokenException',
]);

export interface ProbeAnswer {
  status: number;
  /** `x-amzn-ErrorType` or the body's `__type`, without its namespace or `:` suffix. */
  errorType: string | null;
  /** The body's `message`/`Message`. */
  message: string | null;
}

/** The principal a long-term key authenticates as must be its own user (`<user>-at-<account>`), on any path. */
function isUserOf(arn: string, accountId: string, userName: string): boolean {
  const m = /^arn:aws[a-z-]*:iam::(\d{12}):user\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]+)$/.exec(arn);
  return m !== null && m[1] === accountId && m[2] === userName;
}

/** An excerpt of the service's message: redacted, control and bidi characters replaced, at most 300 characters. */
function clip(text: string): string {
  const plain = redactSecrets(text).replace(/[\p{Cc}\p{Cf}]/gu, ' ');
  return plain.length > 300 ? `${plain.slice(0, 300)}…` : plain;
}

/** Classifies one answer of ListFoundationModels to a bearer-authenticated request. Pure. */
export function classifyAnswer(
  answer: ProbeAnswer,
  candidate: Pick<KeyCandidate, 'kind'> & { accountId?: string; userName?: string },
): { result: LeakVerificationResult; reason: string; principal: string | null } {
  const { status, errorType, message } = answer;
  const said = [`HTTP ${status}`, errorType, message ? `"${clip(message)}"` : null].filter(Boolean).join(' ');
  if (status >= 200 && status < 300) {
    return { result: 'VERIFIED', reason: `${said}: the key authenticated`, principal: null };
  }
  const text = message ?? '';
  const principal = PRINCIPAL.exec(text)?.[1] ?? ANY_PRINCIPAL.exec(text)?.[1] ?? null;
  if (principal && /not authorized to perform/i.test(text)) {
    if (candidate.kind === 'SHORT_TERM') {
      return { result: 'VERIFIED', reason: `${said}: authenticated as ${principal}, then denied`, principal };
    }
    if (
      candidate.accountId &&
      candidate.userName &&
      isUserOf(principal, candidate.accountId, candidate.userName)
    ) {
      return {
        result: 'VERIFIED',
        reason: `${said}: authenticated as the key's user, then denied`,
        principal,
      };
    }
    return {
      result: 'UNVERIFIED',
      reason: `${said}: the answer names ${principal}, not user ${candidate.userName ?? '?'} of account ${candidate.accountId ?? '?'}`,
      principal,
    };
  }
  const refused = status === 400 || status === 401 || status === 403;
  if (
    refused &&
    (AUTH_FAILED.some((p) => p.test(text)) || (errorType !== null && AUTH_FAILED_TYPES.has(errorType)))
  ) {
    return { result: 'REJECTED', reason: `${said}: the key did not authenticate`, principal: null };
  }
  if (status === 429 || errorType === 'ThrottlingException') {
    return { result: 'UNVERIFIED', reason: `${said}: throttled`, principal: null };
  }
  return { result: 'UNVERIFIED', reason: `${said}: not an answer that tells`, principal: null };
}

/** The name (and system code) of a failed request, never its message (it may echo a header, i.e. the key). */
function failureName(err: unknown): string {
  // A timeout rejects with the signal's reason, a DOMException (not an Error in Node 20).
  const name = err && typeof err === 'object' ? (err as { name?: unknown }).name : undefined;
  if (typeof name !== 'string' || !/^\w{1,64}$/.test(name)) return 'unknown error';
  const cause = (err as { cause?: unknown }).cause;
  const code =
    cause && typeof cause === 'object' && typeof (cause as { code?: unknown }).code === 'string'
      ? (cause as { code: string }).code
      : null;
  return code && /^\w{1,64}$/.test(code) ? `${name} (${code})` : name;
}

async function readAnswer(res: Response): Promise<ProbeAnswer> {
  const headerType = res.headers.get('x-amzn-errortype');
  let body = '';
  if (res.body) {
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    while (size < MAX_ANSWER_BYTES) {
      const { done, value } = await reader.read();
      if (done || !value) break;
      chunks.push(value);
      size += value.byteLength;
    }
    await reader.cancel().catch(() => undefined);
    body = Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString('utf8');
  }
  let parsed: Record<string, unknown> = {};
  try {
    const json: unknown = JSON.parse(body);
    if (json && typeof json === 'object') parsed = json as Record<string, unknown>;
  } catch {
    // Not JSON: the text itself is the message.
    parsed = body.trim() ? { message: body.trim() } : {};
  }
  const bodyType = typeof parsed.__type === 'string' ? parsed.__type : null;
  const rawType = headerType ?? bodyType;
  const errorType = rawType ? (rawType.split(':')[0]?.split('#').pop() ?? null) : null;
  const m = parsed.message ?? parsed.Message;
  return { status: res.status, errorType: errorType || null, message: typeof m === 'string' ? m : null };
}

export class BedrockKeyProbe implements LeakVerifier {
  private readonly region: string;
  private readonly fetch: FetchLike;
  private readonly timeoutMs: number;
  private readonly now: () => Date;

  constructor(opts: BedrockKeyProbeOptions) {
    this.region = opts.region;
    this.fetch = opts.fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    this.now = opts.now ?? (() => new Date());
  }

  async verify(candidate: KeyCandidate): Promise<LeakVerification> {
    const region = candidate.kind === 'SHORT_TERM' ? candidate.region : this.region;
    const method = `bedrock:ListFoundationModels ${region}`;
    const done = (result: LeakVerificationResult, reason: string, principal: string | null = null) => ({
      result,
      method,
      checkedAt: this.now().toISOString(),
      reason,
      principal,
    });
    if (!REGION.test(region))
      return done('UNVERIFIED', `"${clip(region)}" is not a region name: no call made`);
    // A forged short-term key can name any well-formed region: only the aws partition's are called.
    if (!COMMERCIAL_REGIONS.has(region))
      return done(
        'UNVERIFIED',
        `${region} is not a region of the aws partition known to keyguard: no call made`,
      );
    const signal = AbortSignal.timeout(this.timeoutMs);
    let res: Response;
    try {
      res = await this.fetch(`https://bedrock.${region}.amazonaws.com/foundation-models`, {
        method: 'GET',
        headers: {
          authorization: `Bearer ${candidate.key}`,
          accept: 'application/json',
          'user-agent': PROBE_USER_AGENT,
        },
        redirect: 'error',
        signal,
      });
    } catch (err) {
      return done('UNVERIFIED', `no answer within ${this.timeoutMs} ms: ${failureName(err)}`);
    }
    if (res.status >= 200 && res.status < 300) {
      // The status says it all; the model list is not read.
      await res.body?.cancel().catch(() => undefined);
      const c = classifyAnswer({ status: res.status, errorType: null, message: null }, candidate);
      return done(c.result, c.reason, c.principal);
    }
    let answer: ProbeAnswer;
    try {
      answer = await readAnswer(res);
    } catch (err) {
      return done('UNVERIFIED', `HTTP ${res.status}, answer unreadable: ${failureName(err)}`);
    }
    const c = classifyAnswer(answer, candidate);
    return done(c.result, c.reason, c.principal);
  }
}
