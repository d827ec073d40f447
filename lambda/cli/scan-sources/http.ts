/**
 * The HTTP client every `keyguard scan` collaboration source (Slack; later Jira, Confluence) reads its API with:
 * Node's global fetch, JSON, a token header, a timeout per request, and HTTP 429 handled as the APIs document it
 * (wait the `Retry-After` seconds, a bounded number of times; the total wait is counted for the summary).
 * Errors are one line naming the source and the API method, and never hold the token: any text an error echoes
 * is redacted before it is shown.
 */

/** A request to a source's API failed: `message` names the source and method, never the token. */
export class SourceHttpError extends Error {
  constructor(
    message: string,
    /** The HTTP status, when there was a response. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'SourceHttpError';
  }
}

export interface SourceHttpOptions {
  /** The source's name in messages ("Slack"). */
  source: string;
  /** The token, sent in `Authorization` (redacted from every message). */
  token: string;
  /** How the token is sent. @default `Bearer <token>` */
  authorization?: string;
  /** Per-request timeout. @default 30 000 ms */
  timeoutMs?: number;
  /** 429 answers waited out before giving up on a request. @default 5 */
  maxRetries?: number;
  /** Longest single wait asked by Retry-After that is honoured; longer: the request fails. @default 300 s */
  maxWaitSeconds?: number;
  /** Largest JSON answer read; a larger one is refused unread (a hostile or broken server). @default 64 MiB */
  maxJsonBytes?: number;
  /** Tests: no real sleeping. @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
  fetch?: typeof fetch;
  /** Other secret forms redacted from every message (e.g. the base64 of Basic credentials). */
  secrets?: readonly string[];
  /** The API's own words for a non-2xx JSON error body (e.g. Jira's errorMessages); undefined: its first line. */
  errorDetail?: (body: string) => string | undefined;
  /** The clock X-RateLimit-Reset and an HTTP-date Retry-After are read against. @default Date.now */
  now?: () => number;
}

/** The largest JSON answer read by default: an API page is a few MiB at most (Slack: 1,000 messages). */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

/** When Retry-After is missing or unreadable on a 429. */
const DEFAULT_RETRY_SECONDS = 1;

export class SourceHttp {
  /** Requests sent (each try counts). */
  calls = 0;
  /** Milliseconds waited on rate limits, in total. */
  waitedMs = 0;
  /** 429 answers received. */
  rateLimited = 0;
  private readonly opts: Required<
    Omit<SourceHttpOptions, 'authorization' | 'fetch' | 'secrets' | 'errorDetail' | 'now'>
  > & {
    authorization: string;
    fetch: typeof fetch;
    secrets: readonly string[];
    errorDetail: ((body: string) => string | undefined) | undefined;
    now: () => number;
  };

  constructor(opts: SourceHttpOptions) {
    this.opts = {
      timeoutMs: 30_000,
      maxRetries: 5,
      maxWaitSeconds: 300,
      maxJsonBytes: MAX_JSON_BYTES,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      ...opts,
      authorization: opts.authorization ?? `Bearer ${opts.token}`,
      fetch: opts.fetch ?? fetch,
      secrets: opts.secrets ?? [],
      errorDetail: opts.errorDetail,
      now: opts.now ?? Date.now,
    };
  }

  /** The text with the token (and its Authorization form) replaced: safe to show. */
  redact(text: string): string {
    let out = text;
    for (const secret of [this.opts.authorization, this.opts.token, ...this.opts.secrets]) {
      if (secret.length >= 4) out = out.split(secret).join('[token]');
    }
    return out;
  }

  private error(method: string, detail: string, status?: number): SourceHttpError {
    return new SourceHttpError(this.redact(`${this.opts.source} ${method}: ${detail}`), status);
  }

  /**
   * A request answered with a body; 429 waited out (Retry-After) up to maxRetries times. `method` is the API
   * method named in errors (e.g. conversations.history).
   */
  async request(method: string, url: string, init: RequestInit = {}): Promise<Response> {
    for (let attempt = 0; ; attempt += 1) {
      this.calls += 1;
      let response: Response;
      try {
        response = await this.opts.fetch(url, {
          ...init,
          headers: { authorization: this.opts.authorization, ...(init.headers as Record<string, string>) },
          signal: AbortSignal.timeout(this.opts.timeoutMs),
        });
      } catch (err) {
        const name = (err as { name?: unknown }).name;
        if (name === 'TimeoutError' || name === 'AbortError')
          throw this.error(method, `no answer within ${this.opts.timeoutMs / 1000} s`);
        const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
        throw this.error(
          method,
          `request failed (${String(cause?.code ?? cause?.message ?? (err as Error).message ?? err)})`,
        );
      }
      if (response.status !== 429) return response;
      this.rateLimited += 1;
      await response.body?.cancel();
      const seconds = this.retryAfterSeconds(response.headers);
      if (attempt >= this.opts.maxRetries)
        throw this.error(method, `rate limited (HTTP 429) ${attempt + 1} times in a row: gave up`, 429);
      if (seconds > this.opts.maxWaitSeconds)
        throw this.error(method, `rate limited (HTTP 429) for ${seconds} s (Retry-After): gave up`, 429);
      this.waitedMs += seconds * 1000;
      await this.opts.sleep(seconds * 1000);
    }
  }

  /**
   * The wait a 429 asks for: Retry-After in seconds (or as an HTTP-date), else X-RateLimit-Reset as an ISO 8601
   * instant (Atlassian sends both; it documents Reset as the request time plus Retry-After), else 1 s.
   */
  private retryAfterSeconds(headers: Headers): number {
    const header = headers.get('retry-after')?.trim();
    if (header !== undefined && /^\d+$/.test(header)) return Number(header);
    for (const at of [header, headers.get('x-ratelimit-reset')?.trim()]) {
      const time = at ? Date.parse(at) : Number.NaN;
      if (Number.isFinite(time)) return Math.max(1, Math.ceil((time - this.opts.now()) / 1000));
    }
    return DEFAULT_RETRY_SECONDS;
  }

  /** A JSON answer (HTTP 2xx); anything else is one SourceHttpError line. */
  async json(method: string, url: string, init: RequestInit = {}): Promise<unknown> {
    const response = await this.request(method, url, {
      ...init,
      headers: { accept: 'application/json', ...(init.headers as Record<string, string>) },
    });
    const bytes = await this.readCapped(response, this.opts.maxJsonBytes).catch((err: unknown) => {
      throw this.error(method, `answer not read (${(err as Error).message ?? String(err)})`, response.status);
    });
    if (bytes === null) {
      const mib = Math.round(this.opts.maxJsonBytes / (1024 * 1024));
      throw this.error(
        method,
        `answer larger than ${mib} MiB: refused (a page of this API is far smaller)`,
        response.status,
      );
    }
    const text = bytes.toString('utf8');
    if (!response.ok) {
      let detail: string | undefined;
      try {
        detail = this.opts.errorDetail?.(text);
      } catch {
        detail = undefined;
      }
      // Redacted before it is cut to one short line: a token cut in two would not be recognised afterwards.
      throw this.error(
        method,
        `HTTP ${response.status} ${firstLine(this.redact(detail ?? text))}`,
        response.status,
      );
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw this.error(
        method,
        `malformed answer (not JSON: ${firstLine(this.redact(text))})`,
        response.status,
      );
    }
  }

  /** A body of at most `maxBytes` (the request is cut and refused beyond); null when larger. */
  async boundedBytes(method: string, url: string, maxBytes: number): Promise<Buffer | null> {
    const response = await this.request(method, url);
    if (!response.ok) {
      await response.body?.cancel();
      throw this.error(method, `HTTP ${response.status}`, response.status);
    }
    return this.readCapped(response, maxBytes);
  }

  /** The body, read up to `maxBytes`: null (and the rest never read) when it is larger. */
  private async readCapped(response: Response, maxBytes: number): Promise<Buffer | null> {
    const chunks: Buffer[] = [];
    let size = 0;
    if (!response.body) return Buffer.alloc(0);
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > maxBytes) {
        await response.body.cancel().catch(() => undefined);
        return null;
      }
      chunks.push(Buffer.from(chunk));
    }
    return Buffer.concat(chunks);
  }
}

/** At most 120 characters of the first line of a body, for an error message. */
function firstLine(text: string): string {
  const line = (text.split('\n')[0] ?? '').trim();
  return line.length > 120 ? `${line.slice(0, 119)}…` : line;
}
