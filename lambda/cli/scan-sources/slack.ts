import * as z from '../../shared/zod';
import { SourceHttp, SourceHttpError, type SourceHttpOptions } from './http';

/**
 * `keyguard scan --slack` (issue 15 §2): the messages, thread replies and text snippets of files of the Slack
 * channels a token can read, through the Web API (https://docs.slack.dev/reference/methods): auth.test (the token,
 * before anything is scanned), conversations.list (Tier 2, cursor pages), conversations.history (Tier 3, cursor
 * pages, `oldest` for --since), conversations.replies (Tier 3, threads with reply_count > 0), chat.getPermalink
 * (special tier, hundreds per minute: called only for a message holding a key) and each text-like file's
 * url_private_download with the token. Slack answers errors with HTTP 200 and {"ok": false, "error": "…"}.
 * Each text goes through the scan engine by a TextSink, so output, fingerprints, baseline and keyguard:allow are
 * those of every other input.
 */

export const SLACK_DEFAULT_URL = 'https://slack.com/api';
/** Files larger than this are not downloaded (counted as skipped). */
export const SLACK_MAX_FILE_BYTES = 1024 * 1024;
/** Items asked per page (conversations.list allows up to 1000; history and replies up to 999; 200 is advised). */
const PAGE_LIMIT = '200';

/** Where the scan engine takes each text: `scan` returns whether it holds keys, and how to locate them. */
export interface TextSink {
  scan(text: string | Buffer): { found: boolean; take(path: string, postedBy?: string): void };
  fail(where: string, reason: string): void;
}

export interface SlackDeps {
  env?: NodeJS.ProcessEnv;
  /** Tests: no real sleeping on Retry-After. */
  sleep?: (ms: number) => Promise<void>;
  timeoutMs?: number;
}

export interface SlackOptions {
  /** --channel NAME (or ID), repeatable; none: every channel the token can read. */
  channels?: readonly string[];
  /** --since: only messages (and replies) posted after this instant. */
  since?: Date;
  /**
   * The scheduled scan (lambda/handlers/collaboration-scan.ts): a channel's own `oldest` (its high-water mark, a
   * message ts), used instead of `since`; undefined for a channel: `since`.
   */
  oldestOf?: (channelId: string) => string | undefined;
  /** Called (and awaited) as each channel is done: what the scheduled scan needs to move its high-water mark. */
  onChannel?: (done: SlackChannelDone) => Promise<void> | void;
  /** Asked before each channel: true leaves the channels not yet started unscanned (a time budget). */
  stop?: () => boolean;
}

/** One channel scanned (SlackOptions.onChannel). */
export interface SlackChannelDone {
  id: string;
  name?: string | undefined;
  /** The newest top-level message ts conversations.history returned (none: no message after `oldest`). */
  newest?: string | undefined;
  /** Whether conversations.history was read to its last page (false: `newest` says nothing about the rest). */
  complete: boolean;
  /** Thread and file reads of the channel that failed (each reported to the sink's `fail`). */
  failures: number;
}

/** Whether Slack message ts `a` ("seconds.micros") is later than `b`, compared exactly (not as floating point). */
export function slackTsAfter(a: string, b: string): boolean {
  const [as = '', af = ''] = a.split('.');
  const [bs = '', bf = ''] = b.split('.');
  if (as.length !== bs.length) return as.length > bs.length;
  if (as !== bs) return as > bs;
  return af.padEnd(6, '0') > bf.padEnd(6, '0');
}

/** The token is missing or Slack rejected it: the scan does not start. */
export class SlackAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlackAuthError';
  }
}

/** auth.test errors meaning the token itself is not usable. */
const TOKEN_ERRORS = new Set([
  'invalid_auth',
  'not_authed',
  'token_revoked',
  'token_expired',
  'account_inactive',
  'no_permission',
  'not_allowed_token_type',
]);

const Cursor = z.optional(z.object({ next_cursor: z.optional(z.string()) }));
const SlackFile = z.object({
  id: z.string(),
  name: z.optional(z.string()),
  mimetype: z.optional(z.string()),
  filetype: z.optional(z.string()),
  size: z.optional(z.number()),
  mode: z.optional(z.string()),
  url_private_download: z.optional(z.string()),
  url_private: z.optional(z.string()),
  permalink: z.optional(z.string()),
  user: z.optional(z.string()),
});
type SlackFile = z.infer<typeof SlackFile>;
const Message = z.object({
  ts: z.string(),
  text: z.optional(z.string()),
  user: z.optional(z.string()),
  bot_id: z.optional(z.string()),
  thread_ts: z.optional(z.string()),
  reply_count: z.optional(z.number()),
  files: z.optional(z.array(SlackFile)),
  /** Legacy attachments (bots, integrations, unfurls): their text is scanned too. */
  attachments: z.optional(
    z.array(
      z.object({
        text: z.optional(z.string()),
        pretext: z.optional(z.string()),
        fallback: z.optional(z.string()),
        title: z.optional(z.string()),
      }),
    ),
  ),
});
type Message = z.infer<typeof Message>;
const AuthTest = z.object({ ok: z.literal(true), url: z.optional(z.string()), team: z.optional(z.string()) });
const ListPage = z.object({
  ok: z.literal(true),
  channels: z.array(z.object({ id: z.string(), name: z.optional(z.string()) })),
  response_metadata: Cursor,
});
const MessagesPage = z.object({ ok: z.literal(true), messages: z.array(Message), response_metadata: Cursor });
const Permalink = z.object({ ok: z.literal(true), permalink: z.string() });
const SlackErrorBody = z.object({ ok: z.literal(false), error: z.string(), needed: z.optional(z.string()) });

/** Text-like file types Slack names in `filetype` (snippets and uploads). */
const TEXT_FILETYPES = new Set(
  (
    'text,javascript,typescript,python,json,yaml,shell,bash,sh,powershell,java,go,ruby,rust,php,csharp,c,cpp,' +
    'kotlin,scala,swift,sql,xml,html,css,ini,toml,dockerfile,markdown,csv,tsv,diff,log,properties,terraform,hcl'
  ).split(','),
);

function textLike(f: SlackFile): boolean {
  if (f.mode === 'snippet') return true;
  const mime = f.mimetype ?? '';
  if (mime.startsWith('text/')) return true;
  if (/^application\/(json|xml|javascript|x-yaml|yaml|x-sh|x-shellscript|toml)$/.test(mime)) return true;
  return TEXT_FILETYPES.has(f.filetype ?? '');
}

export interface SlackStats {
  channels: number;
  messages: number;
  replies: number;
  files: number;
  filesSkipped: number;
  calls: number;
  rateLimited: number;
  waitedMs: number;
}

/** A Slack workspace opened with a token that auth.test accepted. */
export class SlackSource {
  readonly stats: SlackStats = {
    channels: 0,
    messages: 0,
    replies: 0,
    files: 0,
    filesSkipped: 0,
    calls: 0,
    rateLimited: 0,
    waitedMs: 0,
  };

  private constructor(
    private readonly http: SourceHttp,
    private readonly base: string,
    /** The workspace URL (auth.test `url`), for a permalink chat.getPermalink did not give. */
    private readonly workspace: string | undefined,
  ) {}

  /** Reads SLACK_TOKEN and SLACK_API_URL and checks the token with auth.test; SlackAuthError when unusable. */
  static async open(deps: SlackDeps = {}): Promise<SlackSource> {
    const env = deps.env ?? process.env;
    const token = env.SLACK_TOKEN?.trim();
    if (!token)
      throw new SlackAuthError(
        '--slack needs a Slack token in the environment variable SLACK_TOKEN (never a flag); nothing was scanned',
      );
    const base = (env.SLACK_API_URL?.trim() || SLACK_DEFAULT_URL).replace(/\/+$/, '');
    if (!/^https?:\/\/[^\s/]+/.test(base))
      throw new SlackAuthError(
        `SLACK_API_URL ${JSON.stringify(base)} is not an http(s) URL; nothing was scanned`,
      );
    const opts: SourceHttpOptions = {
      source: 'Slack',
      token,
      ...(deps.sleep ? { sleep: deps.sleep } : {}),
      ...(deps.timeoutMs !== undefined ? { timeoutMs: deps.timeoutMs } : {}),
    };
    const http = new SourceHttp(opts);
    let body: unknown;
    try {
      body = await http.json('auth.test', `${base}/auth.test`);
    } catch (err) {
      if (err instanceof SourceHttpError) throw new SlackAuthError(`${err.message}; nothing was scanned`);
      throw err;
    }
    const failed = SlackErrorBody.safeParse(body);
    if (failed.success) {
      const why = failed.data.error;
      throw new SlackAuthError(
        TOKEN_ERRORS.has(why)
          ? `Slack auth.test: the token in SLACK_TOKEN was rejected (${why}); nothing was scanned`
          : `Slack auth.test: ${why}; nothing was scanned`,
      );
    }
    const auth = AuthTest.safeParse(body);
    if (!auth.success)
      throw new SlackAuthError('Slack auth.test: malformed answer (no "ok": true); nothing was scanned');
    const source = new SlackSource(http, base, auth.data.url);
    source.sync();
    return source;
  }

  private sync(): void {
    this.stats.calls = this.http.calls;
    this.stats.rateLimited = this.http.rateLimited;
    this.stats.waitedMs = this.http.waitedMs;
  }

  /** A Web API method's answer, checked against `schema`; {"ok": false} and malformed pages throw one line. */
  private async call<T>(
    method: string,
    params: Record<string, string>,
    schema: z.ZodMiniType<T>,
  ): Promise<T> {
    const query = new URLSearchParams(params).toString();
    try {
      const body = await this.http.json(method, `${this.base}/${method}${query ? `?${query}` : ''}`);
      const failed = SlackErrorBody.safeParse(body);
      if (failed.success) {
        const { error, needed } = failed.data;
        throw new SourceHttpError(`Slack ${method}: ${error}${needed ? ` (the token needs ${needed})` : ''}`);
      }
      const parsed = schema.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new SourceHttpError(
          `Slack ${method}: malformed answer (${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unexpected shape'})`,
        );
      }
      return parsed.data;
    } finally {
      this.sync();
    }
  }

  /** Every page of a cursor-paginated method (response_metadata.next_cursor, empty at the end). */
  private async *pages<T extends { response_metadata?: { next_cursor?: string | undefined } | undefined }>(
    method: string,
    params: Record<string, string>,
    schema: z.ZodMiniType<T>,
  ): AsyncGenerator<T> {
    const seen = new Set<string>();
    let cursor = '';
    do {
      const page = await this.call(method, { ...params, ...(cursor ? { cursor } : {}) }, schema);
      yield page;
      cursor = page.response_metadata?.next_cursor ?? '';
      if (cursor && seen.has(cursor)) throw new SourceHttpError(`Slack ${method}: the same cursor twice`);
      seen.add(cursor);
    } while (cursor);
  }

  /** Scans every selected channel into `sink`; a channel that cannot be read is reported and the rest scanned. */
  async scan(sink: TextSink, opts: SlackOptions = {}): Promise<void> {
    let channels: Array<{ id: string; name?: string | undefined }> = [];
    try {
      for await (const page of this.pages(
        'conversations.list',
        { types: 'public_channel,private_channel', exclude_archived: 'true', limit: PAGE_LIMIT },
        ListPage,
      ))
        channels.push(...page.channels);
    } catch (err) {
      if (!(err instanceof SourceHttpError)) throw err;
      sink.fail('Slack', err.message);
      return;
    }
    if (opts.channels && opts.channels.length > 0) {
      const wanted = opts.channels.map((c) => c.trim().replace(/^#/, ''));
      const chosen = channels.filter((c) => wanted.includes(c.id) || (c.name && wanted.includes(c.name)));
      for (const w of wanted) {
        if (!channels.some((c) => c.id === w || c.name === w))
          sink.fail(`Slack #${w}`, 'no such channel among those the token can read (conversations.list)');
      }
      channels = chosen;
    }
    const since = opts.since ? (opts.since.getTime() / 1000).toFixed(6) : undefined;
    for (const channel of channels) {
      if (opts.stop?.()) break;
      const oldest = opts.oldestOf?.(channel.id) ?? since;
      const shown = `Slack #${channel.name ?? channel.id}`;
      this.stats.channels += 1;
      const done: SlackChannelDone = { id: channel.id, name: channel.name, complete: false, failures: 0 };
      const inChannel: TextSink = {
        scan: (text) => sink.scan(text),
        fail: (where, why) => {
          done.failures += 1;
          sink.fail(where, why);
        },
      };
      try {
        for await (const page of this.pages(
          'conversations.history',
          { channel: channel.id, limit: PAGE_LIMIT, ...(oldest ? { oldest } : {}) },
          MessagesPage,
        )) {
          for (const message of page.messages) {
            this.stats.messages += 1;
            if (!done.newest || slackTsAfter(message.ts, done.newest)) done.newest = message.ts;
            await this.message(inChannel, channel.id, message, shown);
            if ((message.reply_count ?? 0) > 0 && (message.thread_ts ?? message.ts) === message.ts)
              await this.thread(inChannel, channel.id, message.ts, oldest, shown);
          }
        }
        done.complete = true;
      } catch (err) {
        if (!(err instanceof SourceHttpError)) throw err;
        sink.fail(shown, `${err.message}; the other channels are scanned`);
      }
      await opts.onChannel?.(done);
    }
    this.sync();
  }

  private async thread(
    sink: TextSink,
    channel: string,
    ts: string,
    oldest: string | undefined,
    shown: string,
  ): Promise<void> {
    try {
      for await (const page of this.pages(
        'conversations.replies',
        { channel, ts, limit: PAGE_LIMIT, ...(oldest ? { oldest } : {}) },
        MessagesPage,
      )) {
        for (const reply of page.messages) {
          if (reply.ts === ts) continue; // the thread's parent, already scanned
          this.stats.replies += 1;
          await this.message(sink, channel, reply, shown);
        }
      }
    } catch (err) {
      if (!(err instanceof SourceHttpError)) throw err;
      sink.fail(`${shown} thread ${ts}`, err.message);
    }
  }

  private async message(sink: TextSink, channel: string, message: Message, shown: string): Promise<void> {
    const by = message.user ?? message.bot_id;
    // The message text, then each distinct attachment text (each scanned on its own: lines and columns are its own).
    const texts = new Set([message.text ?? '']);
    for (const a of message.attachments ?? [])
      for (const t of [a.pretext, a.title, a.text, a.fallback]) if (t) texts.add(t);
    let permalink: string | undefined;
    for (const t of texts) {
      const scanned = sink.scan(t);
      if (scanned.found) {
        permalink ??= await this.permalink(channel, message);
        scanned.take(permalink, by);
      }
    }
    for (const file of message.files ?? []) await this.file(sink, channel, message, file, shown);
  }

  /** A text-like file of at most SLACK_MAX_FILE_BYTES, downloaded with the token from Slack only. */
  private async file(
    sink: TextSink,
    channel: string,
    message: Message,
    file: SlackFile,
    shown: string,
  ): Promise<void> {
    const url = file.url_private_download ?? file.url_private;
    if (!url || !textLike(file) || (file.size ?? 0) > SLACK_MAX_FILE_BYTES || !this.trusted(url)) {
      this.stats.filesSkipped += 1;
      return;
    }
    try {
      const bytes = await this.http.boundedBytes('files (url_private_download)', url, SLACK_MAX_FILE_BYTES);
      if (bytes === null) {
        this.stats.filesSkipped += 1;
        return;
      }
      this.stats.files += 1;
      const scanned = sink.scan(bytes);
      if (scanned.found)
        scanned.take(file.permalink ?? (await this.permalink(channel, message)), file.user ?? message.user);
    } catch (err) {
      if (!(err instanceof SourceHttpError)) throw err;
      sink.fail(`${shown} file ${file.id}`, err.message);
    } finally {
      this.sync();
    }
  }

  /** The token goes only to Slack's file host or to the API's own origin (SLACK_API_URL), never elsewhere. */
  private trusted(url: string): boolean {
    try {
      const u = new URL(url);
      return u.origin === 'https://files.slack.com' || u.origin === new URL(this.base).origin;
    } catch {
      return false;
    }
  }

  /**
   * chat.getPermalink (documented; handles thread replies); only for a message holding a key. Should it fail, the
   * workspace URL from auth.test with /archives/<channel>/p<ts without the dot> (the form Slack's permalinks take).
   */
  private async permalink(channel: string, message: Message): Promise<string> {
    try {
      return (await this.call('chat.getPermalink', { channel, message_ts: message.ts }, Permalink)).permalink;
    } catch (err) {
      if (!(err instanceof SourceHttpError)) throw err;
      const base = this.workspace ? this.workspace.replace(/\/+$/, '') : 'slack';
      const thread =
        message.thread_ts && message.thread_ts !== message.ts
          ? `?thread_ts=${message.thread_ts}&cid=${channel}`
          : '';
      return `${base}/archives/${channel}/p${message.ts.replace('.', '')}${thread}`;
    }
  }
}

/** The summary line's Slack part. */
export function slackSummary(s: SlackStats): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return (
    `keyguard scan: Slack: ${plural(s.channels, 'channel')}, ${plural(s.messages, 'message')}, ` +
    `${plural(s.replies, 'thread reply').replace('replys', 'replies')}, ${plural(s.files, 'file')} scanned ` +
    `(${s.filesSkipped} skipped: not text, over 1 MiB or not on Slack); ${plural(s.calls, 'API call')}, ` +
    `${s.rateLimited} rate-limited (waited ${Math.round(s.waitedMs / 1000)} s)\n`
  );
}
