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
  private readonly opts: Required<Omit<SourceHttpOptions, 'authorization' | 'fetch'>> & {
    authorization: string;
    fetch: typeof fetch;
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
    };
  }

  /** The text with the token (and its Authorization form) replaced: safe to show. */
  redact(text: string): string {
    let out = text;
    for (const secret of [this.opts.authorization, this.opts.token]) {
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
      const header = response.headers.get('retry-after');
      const seconds = header !== null && /^\d+$/.test(header.trim()) ? Number(header) : DEFAULT_RETRY_SECONDS;
      if (attempt >= this.opts.maxRetries)
        throw this.error(method, `rate limited (HTTP 429) ${attempt + 1} times in a row: gave up`, 429);
      if (seconds > this.opts.maxWaitSeconds)
        throw this.error(method, `rate limited (HTTP 429) for ${seconds} s (Retry-After): gave up`, 429);
      this.waitedMs += seconds * 1000;
      await this.opts.sleep(seconds * 1000);
    }
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
    if (!response.ok) throw this.error(method, `HTTP ${response.status} ${firstLine(text)}`, response.status);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw this.error(method, `malformed answer (not JSON: ${firstLine(text)})`, response.status);
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
