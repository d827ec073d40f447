import * as z from 'zod';
import {
  AtlassianAuthError,
  type AtlassianDeps,
  atlassianSite,
  plural,
  rejectedCredentials,
} from './atlassian';
import { adfToText } from './atlassian-text';
import { type SourceHttp, SourceHttpError } from './http';
import type { TextSink } from './slack';

/**
 * `keyguard scan --jira <JQL>` (issue 15 §2): the summaries, descriptions and comments of the Jira Cloud issues a
 * JQL query selects, through the platform REST API v3 (https://developer.atlassian.com/cloud/jira/platform/rest/v3/):
 * - GET /rest/api/3/myself checks the credentials before anything is scanned;
 * - GET /rest/api/3/search/jql (the enhanced search: the older /rest/api/3/search with startAt and total was
 *   removed from Jira Cloud in 2025, CHANGE-2046) pages by `nextPageToken` until none is returned or `isLast`;
 * - the `comment` field of each issue holds its first comments with `total`; when there are more, GET
 *   /rest/api/3/issue/{key}/comment pages the rest by `startAt` up to `total`.
 * Descriptions and comment bodies are Atlassian Document Format, flattened to text (atlassian-text.ts). Errors are
 * Jira's own words ({"errorMessages": […]}); HTTP 429 is waited out as Retry-After (or X-RateLimit-Reset) asks.
 */

/** Issues asked per search page (the enhanced search returns at most 100 issues with fields; 5000 ids only). */
const SEARCH_PAGE = 100;
/** Comments asked per page of /issue/{key}/comment (its maximum). */
const COMMENT_PAGE = 100;
const FIELDS = 'summary,description,comment,reporter,creator,updated';

export interface JiraOptions {
  /** The JQL selecting the issues (--jira). */
  jql: string;
  /** --since: only issues updated after this instant (added to the JQL), and only comments updated after it. */
  since?: Date;
  /** The clock --since is measured against (the JQL gets a relative "-Nm", free of time zones). */
  now: Date;
  /** Asked before each search page after the first: true leaves the rest unread (the scheduled scan's time budget). */
  stop?: () => boolean;
}

const User = z.object({ accountId: z.string().optional(), displayName: z.string().optional() }).nullish();
const Comment = z.object({
  id: z.string(),
  author: User,
  body: z.unknown().optional(),
  created: z.string().optional(),
  updated: z.string().optional(),
});
type Comment = z.infer<typeof Comment>;
const CommentPage = z.object({
  comments: z.array(Comment),
  startAt: z.number().optional(),
  total: z.number().optional(),
});
const Issue = z.object({
  id: z.string(),
  key: z.string().regex(/^[A-Za-z][A-Za-z0-9_]*-\d+$/, 'not an issue key'),
  fields: z
    .object({
      summary: z.string().nullish(),
      description: z.unknown().optional(),
      reporter: User,
      creator: User,
      comment: CommentPage.nullish(),
      updated: z.string().nullish(),
    })
    .optional(),
});
type Issue = z.infer<typeof Issue>;
const SearchPage = z.object({
  issues: z.array(z.unknown()),
  nextPageToken: z.string().nullish(),
  isLast: z.boolean().optional(),
});
const Myself = z.object({ accountId: z.string() });

export interface JiraStats {
  issues: number;
  comments: number;
  truncated: number;
  calls: number;
  rateLimited: number;
  waitedMs: number;
}

/** What one scan() read (the scheduled scan moves its high-water mark from it). */
export interface JiraScanOutcome {
  /** Whether the search was read to its last page (false: a search page failed or `stop` said so). */
  complete: boolean;
  /** `stop` ended the search before its last page. */
  stopped?: boolean;
  /** The newest `updated` (epoch ms) of the issues read; undefined when none had one. */
  newestUpdated?: number;
}

/** A Jira Cloud site opened with credentials /myself accepted. */
export class JiraSource {
  readonly stats: JiraStats = { issues: 0, comments: 0, truncated: 0, calls: 0, rateLimited: 0, waitedMs: 0 };

  private constructor(
    private readonly http: SourceHttp,
    private readonly site: string,
  ) {}

  /** Reads JIRA_URL, JIRA_EMAIL and JIRA_API_TOKEN and checks them with /myself; AtlassianAuthError when unusable. */
  static async open(deps: AtlassianDeps = {}): Promise<JiraSource> {
    const { site, http } = atlassianSite('--jira', 'Jira', ['JIRA_URL'], deps);
    const source = new JiraSource(http, site);
    try {
      const body = await http.json('GET /rest/api/3/myself', `${site}/rest/api/3/myself`);
      if (!Myself.safeParse(body).success)
        throw new AtlassianAuthError(
          'Jira GET /rest/api/3/myself: malformed answer (no accountId: is JIRA_URL a Jira Cloud site?); nothing was scanned',
        );
    } catch (err) {
      if (!(err instanceof SourceHttpError)) throw err;
      const rejected = rejectedCredentials(err.status);
      throw new AtlassianAuthError(
        rejected
          ? `Jira GET /rest/api/3/myself: ${rejected}; nothing was scanned`
          : `${err.message}; nothing was scanned`,
      );
    } finally {
      source.sync();
    }
    return source;
  }

  private sync(): void {
    this.stats.calls = this.http.calls;
    this.stats.rateLimited = this.http.rateLimited;
    this.stats.waitedMs = this.http.waitedMs;
  }

  /** A JSON answer checked against `schema`; a malformed one throws one line naming Jira and the method. */
  private async get<T>(method: string, url: string, schema: z.ZodType<T>): Promise<T> {
    try {
      const parsed = schema.safeParse(await this.http.json(method, url));
      if (!parsed.success)
        throw new SourceHttpError(`Jira ${method}: malformed answer (${issueText(parsed.error)})`);
      return parsed.data;
    } finally {
      this.sync();
    }
  }

  /** Scans every issue the JQL selects into `sink`; an issue that cannot be read is reported and the rest scanned. */
  async scan(sink: TextSink, opts: JiraOptions): Promise<JiraScanOutcome> {
    const jql = opts.since ? jqlSince(opts.jql, opts.since, opts.now) : opts.jql;
    const seen = new Set<string>();
    const outcome: JiraScanOutcome = { complete: true };
    let token: string | undefined;
    try {
      for (;;) {
        if (token && opts.stop?.()) {
          outcome.complete = false;
          outcome.stopped = true;
          break;
        }
        const params = new URLSearchParams({ jql, fields: FIELDS, maxResults: String(SEARCH_PAGE) });
        if (token) params.set('nextPageToken', token);
        const page = await this.get(
          'GET /rest/api/3/search/jql',
          `${this.site}/rest/api/3/search/jql?${params}`,
          SearchPage,
        );
        for (const [index, raw] of page.issues.entries()) {
          const issue = Issue.safeParse(raw);
          if (!issue.success) {
            const key = (raw as { key?: unknown } | null)?.key;
            sink.fail(
              `Jira ${typeof key === 'string' ? visibleKey(key) : `search result ${index + 1}`}`,
              `malformed issue (${issueText(issue.error)}); the other issues are scanned`,
            );
            continue;
          }
          await this.issue(sink, issue.data, opts.since);
          const updated = Date.parse(issue.data.fields?.updated ?? '');
          if (Number.isFinite(updated) && updated > (outcome.newestUpdated ?? Number.NEGATIVE_INFINITY))
            outcome.newestUpdated = updated;
        }
        token = page.nextPageToken ?? undefined;
        if (!token || page.isLast === true) break;
        if (seen.has(token))
          throw new SourceHttpError('Jira GET /rest/api/3/search/jql: the same nextPageToken twice');
        seen.add(token);
      }
    } catch (err) {
      if (!(err instanceof SourceHttpError)) throw err;
      outcome.complete = false;
      const rejected = rejectedCredentials(err.status);
      sink.fail('Jira', rejected ? `${err.message} (${rejected})` : err.message);
    }
    this.sync();
    return outcome;
  }

  private async issue(sink: TextSink, issue: Issue, since: Date | undefined): Promise<void> {
    this.stats.issues += 1;
    const fields = issue.fields ?? {};
    const link = `${this.site}/browse/${issue.key}`;
    const description = adfToText(fields.description ?? null);
    if (description.truncated) this.truncated(sink, `Jira ${issue.key}`, 'description');
    const text = [fields.summary ?? '', description.text].filter((t) => t !== '').join('\n');
    const scanned = sink.scan(text);
    if (scanned.found) scanned.take(link, author(fields.reporter) ?? author(fields.creator));
    // The comments the search returned, then (when it says there are more) the others, page by page: a page that
    // fails leaves the ones before it scanned.
    const embedded = fields.comment?.comments ?? [];
    this.comments(sink, issue.key, link, embedded, since);
    const total = fields.comment?.total ?? embedded.length;
    const method = 'GET /rest/api/3/issue/{key}/comment';
    let startAt = embedded.length;
    try {
      while (startAt < total) {
        const params = new URLSearchParams({ startAt: String(startAt), maxResults: String(COMMENT_PAGE) });
        const page = await this.get(
          method,
          `${this.site}/rest/api/3/issue/${encodeURIComponent(issue.key)}/comment?${params}`,
          CommentPage,
        );
        if (page.comments.length === 0) break;
        this.comments(sink, issue.key, link, page.comments, since);
        startAt += page.comments.length;
      }
    } catch (err) {
      if (!(err instanceof SourceHttpError)) throw err;
      sink.fail(
        `Jira ${issue.key}`,
        `${err.message}; its comments from ${startAt + 1} on were not scanned, the other issues are`,
      );
    }
  }

  private comments(
    sink: TextSink,
    key: string,
    link: string,
    comments: readonly Comment[],
    since: Date | undefined,
  ): void {
    for (const c of comments) {
      const when = Date.parse(c.updated ?? c.created ?? '');
      if (since && Number.isFinite(when) && when < since.getTime()) continue;
      this.stats.comments += 1;
      const body = adfToText(c.body ?? null);
      if (body.truncated) this.truncated(sink, `Jira ${key}`, `comment ${c.id}`);
      const found = sink.scan(body.text);
      if (found.found) found.take(`${link}?focusedCommentId=${encodeURIComponent(c.id)}`, author(c.author));
    }
  }

  private truncated(sink: TextSink, where: string, what: string): void {
    this.stats.truncated += 1;
    sink.fail(where, `the ${what} is nested too deep or too large: the part beyond was not scanned`);
  }
}

/** The author a finding names: the Atlassian account ID (stable; display names change and are free text). */
function author(user: z.infer<typeof User>): string | undefined {
  return user?.accountId ?? undefined;
}

/** An issue key from an answer, as shown on stderr: at most 40 characters. */
function visibleKey(key: string): string {
  return key.length > 40 ? `${key.slice(0, 39)}…` : key;
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unexpected shape';
}

/**
 * The JQL narrowed to issues updated since `since`: `(<jql>) AND updated >= "-<minutes>m" ORDER BY …`. A relative
 * date is used because an absolute one is read in the Jira user's time zone; the minutes are rounded up, so the
 * window is never narrower than asked. A trailing ORDER BY (outside quotes) is kept at the end.
 */
export function jqlSince(jql: string, since: Date, now: Date): string {
  const minutes = Math.max(1, Math.ceil((now.getTime() - since.getTime()) / 60_000));
  const { where, orderBy } = splitOrderBy(jql);
  const bound = `updated >= "-${minutes}m"`;
  return `${where.trim() ? `(${where.trim()}) AND ${bound}` : bound}${orderBy ? ` ${orderBy}` : ''}`;
}

/** The JQL before its last ORDER BY outside quotes, and that clause. */
export function splitOrderBy(jql: string): { where: string; orderBy: string } {
  let quote = '';
  let at = -1;
  for (let i = 0; i < jql.length; i += 1) {
    const c = jql[i];
    if (quote) {
      if (c === '\\') i += 1;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (
      (c === 'o' || c === 'O') &&
      (i === 0 || /[\s)]/.test(jql[i - 1] ?? '')) &&
      /^order\s+by\b/i.test(jql.slice(i, i + 40))
    )
      at = i;
  }
  return at === -1 ? { where: jql, orderBy: '' } : { where: jql.slice(0, at), orderBy: jql.slice(at).trim() };
}

/** The summary line's Jira part. */
export function jiraSummary(s: JiraStats): string {
  return (
    `keyguard scan: Jira: ${plural(s.issues, 'issue')}, ${plural(s.comments, 'comment')} scanned` +
    `${s.truncated > 0 ? ` (${s.truncated} cut: nested too deep or too large)` : ''}; ` +
    `${plural(s.calls, 'API call')}, ${s.rateLimited} rate-limited (waited ${Math.round(s.waitedMs / 1000)} s)\n`
  );
}
