import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import {
  ApprovalError,
  ApprovalErrorSchema,
  type ApprovalRequest,
  type ApprovalResponse,
  ApprovalResponseSchema,
} from '../domain/approval-protocol';

/**
 * The stack's approval function, called over its IAM-authenticated (AWS_IAM) function URL: the request is signed
 * with SigV4 (service `lambda`) with the caller's own credentials, so the approver of record is whoever AWS
 * authenticates, never a name the caller gives. Lambda refuses an unsigned or badly signed request, or a caller
 * without lambda:InvokeFunctionUrl and lambda:InvokeFunction on the function, with its own 403 before the function
 * runs. Credentials and the Authorization header never appear in an error message.
 */

/** AWS credentials as the SDK's providers resolve them (structurally @smithy/types' AwsCredentialIdentity). */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export type CredentialsProvider = () => Promise<AwsCredentials>;

/** A call that takes longer is abandoned (the function itself times out well before). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Lambda's own limit on a function URL's response payload: anything longer is not the function's answer. */
export const RESPONSE_MAX_BYTES = 6 * 1024 * 1024;
/** Region of the stack (pinned to us-east-1) when neither the URL nor the environment names one. */
export const DEFAULT_REGION = 'us-east-1';

/** The URL given is not one the client will send credentials-signed requests to. */
export class ApprovalUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApprovalUrlError';
  }
}

/** No usable AWS credentials (none found, or the profile's could not be loaded). */
export class MissingCredentialsError extends Error {
  /** `cause`: the credential provider's error (the CLI reads whether a named profile exists from it). */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MissingCredentialsError';
  }
}

/** Lambda refused the request before the function ran (IAM: signature, or no permission to invoke). */
export class ApprovalForbiddenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApprovalForbiddenError';
  }
}

/** The function could not be reached, did not answer in time, or answered something that is not the protocol. */
export class ApprovalTransportError extends Error {
  /** The HTTP status of an answer that is not the protocol (429: Lambda throttled the function URL). */
  readonly status: number | undefined;
  /** `cause`: the network error (ECONNREFUSED, ENOTFOUND, a timeout) when the function could not be reached. */
  constructor(message: string, options?: ErrorOptions & { status?: number }) {
    super(message, options);
    this.status = options?.status;
    this.name = 'ApprovalTransportError';
  }
}

const LAMBDA_URL_HOST = /^[a-z0-9]+\.lambda-url\.([a-z]{2}(?:-[a-z]+)+-\d+)\.on\.aws$/;

function isLoopback(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(h);
}

/**
 * The function URL, checked: https only (the request carries a signature and the reply an audit trail), except to
 * a loopback address (tests and local emulators); no user name or password in it.
 */
export function parseApprovalsUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new ApprovalUrlError(
      `--url: ${JSON.stringify(value)} is not a URL; expected the stack output ApprovalsUrl, ` +
        'e.g. https://abc123.lambda-url.us-east-1.on.aws/',
    );
  }
  if (url.username || url.password) {
    throw new ApprovalUrlError('--url: must not contain a user name or password');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
    throw new ApprovalUrlError(
      `--url: ${JSON.stringify(url.origin)} is not https; the approval function is only called over https ` +
        '(plain http is allowed to a loopback address only)',
    );
  }
  return url;
}

/** The signing region: the one in a Lambda function URL's host, else `fallback`. */
export function regionOf(url: URL, fallback: string): string {
  return LAMBDA_URL_HOST.exec(url.hostname.toLowerCase())?.[1] ?? fallback;
}

export interface ApprovalClientOptions {
  /** The function URL (stack output ApprovalsUrl). */
  url: string;
  credentials: CredentialsProvider;
  /** Region when the URL's host does not name one (default us-east-1). */
  fallbackRegion?: string;
  /** The AWS profile the credentials come from, named in messages. */
  profile?: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

/** Reads at most `max` bytes of a response body; more is an error (the stream is cancelled). */
async function readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new ApprovalTransportError(`the answer is longer than ${max.toLocaleString('en-US')} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** An error's field, read without instanceof: fetch's errors come from another realm under some runners. */
function field(err: unknown, name: 'name' | 'message' | 'code' | 'cause'): unknown {
  return err !== null && typeof err === 'object' ? (err as Record<string, unknown>)[name] : undefined;
}

/** What went wrong under fetch's generic "fetch failed": the cause's code and message (ECONNREFUSED, ENOTFOUND…). */
function causeText(err: unknown): string {
  const cause = field(err, 'cause');
  const source = cause !== undefined && typeof field(cause, 'message') === 'string' ? cause : err;
  const code = field(source, 'code');
  const message = field(source, 'message');
  const text = typeof message === 'string' ? message : '';
  const parts = [typeof code === 'string' && !text.includes(code) ? code : '', text].filter(
    (p) => p.length > 0,
  );
  return parts.length > 0 ? parts.join(': ') : String(source);
}

export class ApprovalClient {
  private readonly url: URL;
  private readonly signer: SignatureV4;

  constructor(private readonly options: ApprovalClientOptions) {
    this.url = parseApprovalsUrl(options.url);
    this.signer = new SignatureV4({
      service: 'lambda',
      region: regionOf(this.url, options.fallbackRegion ?? DEFAULT_REGION),
      credentials: () => this.credentials(),
      sha256: Hash.bind(null, 'sha256'),
    });
  }

  private async credentials(): Promise<AwsCredentials> {
    const { profile } = this.options;
    try {
      return await this.options.credentials();
    } catch (err) {
      const message = field(err, 'message');
      const why = typeof message === 'string' ? message : String(err);
      throw new MissingCredentialsError(
        `no AWS credentials${profile ? ` for profile ${profile}` : ''}: ${why}. Sign in as for the AWS CLI ` +
          '(aws sso login, a profile in AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)',
        { cause: err },
      );
    }
  }

  /** Sends one request; the function's answer, or an ApprovalError (kind from the function) or a client error. */
  async send(request: ApprovalRequest): Promise<ApprovalResponse> {
    const body = JSON.stringify(request);
    const query: Record<string, string[]> = {};
    for (const [k, v] of this.url.searchParams) query[k] = [...(query[k] ?? []), v];
    const signed = await this.signer.sign({
      method: 'POST',
      protocol: this.url.protocol,
      hostname: this.url.hostname,
      ...(this.url.port ? { port: Number(this.url.port) } : {}),
      path: this.url.pathname,
      query,
      headers: { host: this.url.host, 'content-type': 'application/json' },
      body,
    });
    const where = this.url.origin;
    const doFetch = this.options.fetch ?? fetch;
    const timeoutMs = this.options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    let status: number;
    let text: string;
    try {
      const res = await doFetch(this.url, {
        method: 'POST',
        headers: Object.fromEntries(
          Object.entries(signed.headers).filter(([k]) => k.toLowerCase() !== 'host'),
        ),
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.status;
      text = await readCapped(res, RESPONSE_MAX_BYTES);
    } catch (err) {
      if (err instanceof ApprovalTransportError) {
        throw new ApprovalTransportError(`the approval function at ${where} failed: ${err.message}`);
      }
      const name = field(err, 'name');
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new ApprovalTransportError(
          `the approval function at ${where} did not answer within ${timeoutMs / 1000} s`,
          { cause: err },
        );
      }
      throw new ApprovalTransportError(
        `could not reach the approval function at ${where}: ${causeText(err)}`,
        { cause: err },
      );
    }
    return this.interpret(status, text, where);
  }

  private interpret(status: number, text: string, where: string): ApprovalResponse {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (status === 200) {
      const ok = ApprovalResponseSchema.safeParse(json);
      if (ok.success) return ok.data;
      throw new ApprovalTransportError(
        `the approval function at ${where} answered 200 with something that is not an approval response ` +
          '(is --url the stack output ApprovalsUrl of a stack of this version?)',
      );
    }
    const error = ApprovalErrorSchema.safeParse(json);
    if (error.success) throw new ApprovalError(error.data.error, error.data.message);
    if (status === 403) {
      throw new ApprovalForbiddenError(
        `access denied by the approval function URL ${where}: AWS did not accept the signed request ` +
          '(the caller lacks lambda:InvokeFunctionUrl and lambda:InvokeFunction on the approval function, or the ' +
          "credentials are not valid). Attach the stack's managed policy ApproverPolicy (stack output " +
          'ApproverPolicyArn) to your role or user, or ask whoever administers the stack to',
      );
    }
    // The body of an answer that is not the protocol is not shown: it may hold anything.
    throw new ApprovalTransportError(`the approval function at ${where} answered HTTP ${status}`, { status });
  }
}
