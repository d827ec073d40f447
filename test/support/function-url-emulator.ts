import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Context, LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';

/**
 * A Lambda function URL with AWS_IAM authentication, on 127.0.0.1 (random port), for tests: it checks each
 * request's SigV4 signature for real (recomputed with @smithy/signature-v4 from the secret of the access key id the
 * request names, in a table of test identities), answers Lambda's own `403 {"Message":"Forbidden"}` to an unsigned
 * or badly signed request, an unknown key, a wrong scope (region, service) or a stale date, and otherwise builds the
 * function URL event (payload format 2.0, requestContext.authorizer.iam holding the signer's identity) and runs the
 * handler with it, mapping its result to the HTTP answer as Lambda does. IAM policy is not evaluated: every known
 * identity may invoke (a test of "not allowed to invoke" uses an identity the table does not hold).
 */

export interface TestIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  /** When set, requests must carry it (x-amz-security-token, signed), as for temporary credentials. */
  sessionToken?: string;
  /** The principal AWS would authenticate: an IAM user ARN or an STS assumed-role session ARN. */
  userArn: string;
  accountId: string;
}

export type FunctionUrlHandler = (
  event: LambdaFunctionURLEvent,
  context?: Context,
) => Promise<LambdaFunctionURLResult>;

export interface FunctionUrlEmulatorOptions {
  identities: readonly TestIdentity[];
  handler: FunctionUrlHandler;
  /** The function's region: the signature's scope must name it (default us-east-1). */
  region?: string;
  /** The clock a request's X-Amz-Date is checked against (default: the real clock). */
  now?: () => Date;
}

export interface FunctionUrlEmulator {
  /** `http://127.0.0.1:<port>/` */
  url: string;
  /** The events the handler was run with (requests Lambda let through). */
  events: LambdaFunctionURLEvent[];
  /** How many requests were refused before the handler, as Lambda's IAM check would. */
  forbidden: number;
  close(): Promise<void>;
}

/** Lambda's limit on a function URL request payload. */
const REQUEST_MAX_BYTES = 6 * 1024 * 1024;
/** SigV4 allows this much clock skew between signer and AWS. */
const MAX_SKEW_MS = 15 * 60 * 1000;
const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

class Forbidden extends Error {}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function parseAmzDate(value: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return null;
  const [, y, mo, d, h, mi, s] = m;
  return new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

async function readBody(req: IncomingMessage): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > REQUEST_MAX_BYTES) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The identity whose signature the request carries, or Forbidden. */
async function authenticate(
  req: IncomingMessage,
  body: Buffer,
  options: FunctionUrlEmulatorOptions,
): Promise<TestIdentity> {
  const region = options.region ?? 'us-east-1';
  const auth = AUTHORIZATION.exec(header(req, 'authorization') ?? '');
  if (!auth) throw new Forbidden('no SigV4 Authorization header');
  const [, keyId, day, scopeRegion, service, signedList, signature] = auth as unknown as string[];
  const identity = options.identities.find((i) => i.accessKeyId === keyId);
  if (!identity) throw new Forbidden('unknown access key id');
  if (scopeRegion !== region || service !== 'lambda') throw new Forbidden('wrong credential scope');
  const amzDate = header(req, 'x-amz-date') ?? '';
  const signedAt = parseAmzDate(amzDate);
  if (!signedAt || amzDate.slice(0, 8) !== day) throw new Forbidden('bad X-Amz-Date');
  const now = (options.now ?? (() => new Date()))();
  if (Math.abs(now.getTime() - signedAt.getTime()) > MAX_SKEW_MS) throw new Forbidden('signature expired');
  const signed = (signedList as string).split(';');
  if (!signed.includes('host') || !signed.includes('x-amz-date'))
    throw new Forbidden('host or date not signed');
  const token = header(req, 'x-amz-security-token');
  if ((identity.sessionToken ?? undefined) !== token) throw new Forbidden('security token mismatch');
  if (token !== undefined && !signed.includes('x-amz-security-token'))
    throw new Forbidden('token not signed');
  const bodyHash = createHash('sha256').update(body).digest('hex');
  const claimedHash = header(req, 'x-amz-content-sha256');
  if (claimedHash !== undefined && claimedHash !== bodyHash) throw new Forbidden('payload hash mismatch');

  const headers: Record<string, string> = {};
  for (const name of signed) {
    const value = header(req, name);
    if (value === undefined) throw new Forbidden(`signed header ${name} missing`);
    headers[name] = value;
  }
  const url = new URL(req.url ?? '/', 'http://emulator');
  const query: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) query[k] = [...(query[k] ?? []), v];
  const signer = new SignatureV4({
    service: 'lambda',
    region,
    credentials: {
      accessKeyId: identity.accessKeyId,
      secretAccessKey: identity.secretAccessKey,
      ...(identity.sessionToken ? { sessionToken: identity.sessionToken } : {}),
    },
    sha256: Hash.bind(null, 'sha256'),
    applyChecksum: false,
  });
  const expected = await signer.sign(
    {
      method: req.method ?? 'GET',
      protocol: 'http:',
      hostname: '127.0.0.1',
      path: url.pathname,
      query,
      headers,
      body,
    },
    { signingDate: signedAt },
  );
  const recomputed = AUTHORIZATION.exec(String(expected.headers.authorization ?? ''));
  if (!recomputed || recomputed[5] !== signedList || !sameHex(recomputed[6] as string, signature as string)) {
    throw new Forbidden('signature mismatch');
  }
  return identity;
}

const TEXT_TYPES = /^(text\/|application\/(json|xml|javascript)|application\/[^;]*\+(json|xml))/i;

function eventFor(
  req: IncomingMessage,
  body: Buffer,
  who: TestIdentity,
  host: string,
): LambdaFunctionURLEvent {
  const url = new URL(req.url ?? '/', 'http://emulator');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
  }
  const text = TEXT_TYPES.test(headers['content-type'] ?? '');
  const at = new Date();
  const query = Object.fromEntries(url.searchParams);
  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.replace(/^\?/, ''),
    headers,
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: 'anonymous',
      apiId: 'emulatorfunctionurl',
      authorizer: {
        iam: {
          accessKey: who.accessKeyId,
          accountId: who.accountId,
          callerId: 'AROAEMULATOR:caller',
          cognitoIdentity: null,
          principalOrgId: null,
          userArn: who.userArn,
          userId: 'AROAEMULATOR:caller',
        },
      },
      domainName: host,
      domainPrefix: 'emulatorfunctionurl',
      http: {
        method: req.method ?? 'GET',
        path: url.pathname,
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: at.toISOString(),
      timeEpoch: at.getTime(),
    },
    ...(body.length > 0 ? { body: text ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: body.length > 0 && !text,
  };
  return event as LambdaFunctionURLEvent;
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

/** Maps a handler result to the HTTP answer (Lambda: a string or an object without statusCode is a 200 JSON body). */
function reply(res: ServerResponse, result: LambdaFunctionURLResult): void {
  if (typeof result === 'object' && result !== null && 'statusCode' in result) {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
    const body = result.body ?? '';
    send(
      res,
      result.statusCode ?? 200,
      result.isBase64Encoded ? Buffer.from(body, 'base64').toString() : body,
      headers,
    );
    return;
  }
  send(res, 200, typeof result === 'string' ? result : JSON.stringify(result));
}

export async function startFunctionUrlEmulator(
  options: FunctionUrlEmulatorOptions,
): Promise<FunctionUrlEmulator> {
  const emulator: FunctionUrlEmulator = {
    url: '',
    events: [],
    forbidden: 0,
    close: async () => undefined,
  };
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      if (body === null) {
        send(res, 413, JSON.stringify({ Message: 'Request Entity Too Large' }));
        return;
      }
      let who: TestIdentity;
      try {
        who = await authenticate(req, body, options);
      } catch (err) {
        if (!(err instanceof Forbidden)) throw err;
        emulator.forbidden += 1;
        send(res, 403, JSON.stringify({ Message: 'Forbidden' }));
        return;
      }
      const event = eventFor(req, body, who, header(req, 'host') ?? '127.0.0.1');
      emulator.events.push(event);
      try {
        reply(res, await options.handler(event, { awsRequestId: event.requestContext.requestId } as Context));
      } catch {
        // An unhandled error in the function: Lambda answers 502 without the function's details.
        send(res, 502, JSON.stringify({ Message: 'Internal Server Error' }));
      }
    })().catch(() => {
      if (!res.headersSent) send(res, 500, JSON.stringify({ Message: 'emulator failure' }));
      else res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  emulator.url = `http://127.0.0.1:${port}/`;
  let closed: Promise<void> | null = null;
  emulator.close = () => {
    closed ??= new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((err) => (err ? reject(err) : resolve()));
    });
    return closed;
  };
  return emulator;
}

/**
 * A request signed as the SDK would sign it (SigV4, service lambda), sent with fetch: for tests that bypass the CLI
 * (a body the CLI would never build). `credentials` may be another identity's key with a wrong secret.
 */
export async function signedPost(
  url: string,
  body: string,
  credentials: Pick<TestIdentity, 'accessKeyId' | 'secretAccessKey' | 'sessionToken'>,
  region = 'us-east-1',
): Promise<{ status: number; json: unknown }> {
  const target = new URL(url);
  const signer = new SignatureV4({
    service: 'lambda',
    region,
    credentials,
    sha256: Hash.bind(null, 'sha256'),
  });
  const signed = await signer.sign({
    method: 'POST',
    protocol: target.protocol,
    hostname: target.hostname,
    port: Number(target.port),
    path: target.pathname,
    query: {},
    headers: { host: target.host, 'content-type': 'application/json' },
    body,
  });
  const { host: _host, ...headers } = signed.headers;
  const res = await fetch(target, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, json: JSON.parse(await res.text()) as unknown };
}
