import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from './loopback-server';

/**
 * A fake Slack Web API on loopback (test code, not product), answering in the documented shapes
 * (https://docs.slack.dev/reference/methods): HTTP 200 with {"ok": false, "error"} for errors, cursor pages in
 * response_metadata.next_cursor, 429 with Retry-After. It serves auth.test, conversations.list,
 * conversations.history (newest first, `oldest` honoured), conversations.replies, chat.getPermalink and file
 * downloads under /files/…. Used by test/cli/scan-slack.test.ts and the Slack benchmark (bench/slack.bench.ts),
 * which passes lazily generated message lists and a rate-limit hook.
 */

export interface FakeSlackMessage {
  ts: string;
  text: string;
  user?: string;
  bot_id?: string;
  attachments?: Array<Record<string, string>>;
  thread_ts?: string;
  reply_count?: number;
  files?: Array<Record<string, unknown>>;
}

/**
 * Messages oldest first (ascending `ts`): an array, or anything indexable that builds each message on demand
 * (so a benchmark workspace of millions of messages never sits in memory).
 */
export interface FakeSlackMessages {
  readonly length: number;
  at(index: number): FakeSlackMessage | undefined;
}

export interface FakeSlackChannel {
  id: string;
  name: string;
  messages: FakeSlackMessages;
  /** conversations.history answers {"ok": false, "error": …, "needed": "groups:history"} (e.g. missing_scope). */
  error?: string;
  /** conversations.history answers a body that is not JSON (and echoes the token). */
  malformed?: boolean;
}

export interface FakeSlackRequest {
  method: string;
  params: URLSearchParams;
  auth: string | undefined;
}

/** Items per page of each paginated method; 'limit' honours the request's `limit` parameter. */
export interface FakeSlackPageSizes {
  channels: number | 'limit';
  history: number | 'limit';
  replies: number | 'limit';
}

export interface FakeSlackOptions {
  /** The only bearer token accepted; anything else answers not_authed. */
  token: string;
  /** @default { channels: 2, history: 2, replies: 1 } (small, so tests cross page boundaries) */
  pageSizes?: Partial<FakeSlackPageSizes>;
  /** Keep every request in `requests` (a benchmark turns this off; `counts` is always kept). @default true */
  record?: boolean;
}

/** A fake Slack workspace: its answers are built from `channels`, `threads` and `files`. */
export class FakeSlack extends LoopbackServer {
  readonly requests: FakeSlackRequest[] = [];
  /** Requests per method (429 answers included). */
  readonly counts = new Map<string, number>();
  channels: FakeSlackChannel[] = [];
  /** Thread replies (the parent first, as Slack answers) by `${channel}:${thread ts}`. */
  threads: { get(key: string): FakeSlackMessages | undefined } = new Map<string, FakeSlackMessages>();
  /** File bodies by path (`files/F001/env.txt` for `${url}/files/F001/env.txt`). */
  files: { get(path: string): string | undefined } = new Map<string, string>();
  /** auth.test answers {"ok": false, "error": authError}. */
  authError: string | undefined;
  /** The first call of this method answers HTTP 429 with Retry-After. */
  rateLimitOnce: { method: string; retryAfter: string } | undefined;
  /** Called for every authorised request: a number of seconds answers HTTP 429 with that Retry-After. */
  rateLimit: ((method: string) => number | undefined) | undefined;
  private readonly pageSizes: FakeSlackPageSizes;
  private readonly record: boolean;

  constructor(private readonly opts: FakeSlackOptions) {
    super();
    this.pageSizes = { channels: 2, history: 2, replies: 1, ...opts.pageSizes };
    this.record = opts.record ?? true;
  }

  calls(method: string): FakeSlackRequest[] {
    return this.requests.filter((r) => r.method === method);
  }

  private size(which: keyof FakeSlackPageSizes, p: URLSearchParams): number {
    const size = this.pageSizes[which];
    if (size !== 'limit') return size;
    const limit = Number(p.get('limit') ?? '100');
    return Number.isInteger(limit) && limit > 0 ? Math.min(limit, 1000) : 100;
  }

  protected answer(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', this.url);
    const method = url.pathname.replace(/^\/api\//, '').replace(/^\//, '');
    if (this.record)
      this.requests.push({ method, params: url.searchParams, auth: req.headers.authorization });
    this.counts.set(method, (this.counts.get(method) ?? 0) + 1);
    const json = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.opts.token}`)
      return json({ ok: false, error: 'not_authed' });
    const tooMany = (retryAfter: string) => {
      res.writeHead(429, { 'retry-after': retryAfter, 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: false, error: 'ratelimited' }));
    };
    if (this.rateLimitOnce?.method === method) {
      const { retryAfter } = this.rateLimitOnce;
      this.rateLimitOnce = undefined;
      return tooMany(retryAfter);
    }
    const wait = this.rateLimit?.(method);
    if (wait !== undefined) return tooMany(String(wait));
    const p = url.searchParams;
    if (method.startsWith('files/')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(this.files.get(method) ?? '');
      return;
    }
    switch (method) {
      case 'auth.test':
        return json(
          this.authError
            ? { ok: false, error: this.authError }
            : { ok: true, url: 'https://acme.slack.com/', team: 'Acme', user_id: 'U0SCANNER' },
        );
      case 'conversations.list': {
        const all = { length: this.channels.length, at: (i: number) => this.channels[i] };
        const { items, next } = page(all, p, this.size('channels', p));
        return json({
          ok: true,
          channels: items.map((c) => ({ id: c.id, name: c.name, is_channel: true })),
          response_metadata: { next_cursor: next },
        });
      }
      case 'conversations.history': {
        const channel = this.channels.find((c) => c.id === p.get('channel'));
        if (!channel) return json({ ok: false, error: 'channel_not_found' });
        if (channel.error) return json({ ok: false, error: channel.error, needed: 'groups:history' });
        if (channel.malformed) {
          res.writeHead(200, { 'content-type': 'text/html' });
          res.end(`<html>proxy error for Bearer ${this.opts.token}</html>`);
          return;
        }
        // Newest first, as Slack returns history, only those after `oldest`.
        const messages = newestFirst(channel.messages, Number(p.get('oldest') ?? '0'));
        const { items, next } = page(messages, p, this.size('history', p));
        return json({
          ok: true,
          messages: items,
          has_more: next !== '',
          response_metadata: { next_cursor: next },
        });
      }
      case 'conversations.replies': {
        const thread = this.threads.get(`${p.get('channel')}:${p.get('ts')}`) ?? [];
        const { items, next } = page(thread, p, this.size('replies', p));
        return json({ ok: true, messages: items, response_metadata: { next_cursor: next } });
      }
      case 'chat.getPermalink': {
        const ts = p.get('message_ts') ?? '';
        return json({
          ok: true,
          channel: p.get('channel'),
          permalink: `https://acme.slack.com/archives/${p.get('channel')}/p${ts.replace('.', '')}`,
        });
      }
      default:
        return json({ ok: false, error: 'unknown_method' });
    }
  }
}

/** The messages after `oldest` (by binary search: the list is oldest first), newest first. */
function newestFirst(messages: FakeSlackMessages, oldest: number): FakeSlackMessages {
  let lo = 0;
  let hi = messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (Number(messages.at(mid)?.ts) > oldest) hi = mid;
    else lo = mid + 1;
  }
  const last = messages.length - 1;
  return { length: messages.length - lo, at: (i) => messages.at(last - i) };
}

/** One cursor page (`size` items); the cursor is the next offset, empty at the end. */
function page<T>(
  all: { readonly length: number; at(index: number): T | undefined },
  p: URLSearchParams,
  size: number,
): { items: T[]; next: string } {
  const from = Number(p.get('cursor') ?? '0');
  const items: T[] = [];
  for (let i = from; i < Math.min(from + size, all.length); i += 1) {
    const item = all.at(i);
    if (item !== undefined) items.push(item);
  }
  return { items, next: from + size < all.length ? String(from + size) : '' };
}
