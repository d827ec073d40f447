import * as z from 'zod';
import {
  AtlassianAuthError,
  type AtlassianDeps,
  atlassianSite,
  plural,
  rejectedCredentials,
} from './atlassian';
import { storageToText } from './atlassian-text';
import { type SourceHttp, SourceHttpError } from './http';
import type { TextSink } from './slack';

/**
 * `keyguard scan --confluence <space key>` (issue 15 §2): the current pages of Confluence Cloud spaces and their
 * comments, through the REST API v2 (https://developer.atlassian.com/cloud/confluence/rest/v2/), all under /wiki:
 * - GET /wiki/api/v2/spaces?keys=… finds the spaces' ids, and checks the credentials before anything is scanned;
 * - GET /wiki/api/v2/spaces/{id}/pages, then …/blogposts, with body-format=storage, status=current and
 *   sort=-modified-date, every page of results by the cursor link `_links.next` (relative to the site; a link to
 *   another origin is refused: the credentials go only to the site);
 * - GET /wiki/api/v2/{pages|blogposts}/{id}/footer-comments and …/inline-comments (body-format=storage), and the
 *   replies of each comment (GET /wiki/api/v2/{footer|inline}-comments/{id}/children), cursor pages likewise.
 * Bodies are storage format (XHTML), read as text (atlassian-text.ts). Errors are Confluence's own words
 * ({"errors": [{"title", "detail"}]}); HTTP 429 is waited out as Retry-After (or X-RateLimit-Reset) asks.
 */

/** Items asked per page (the v2 list endpoints allow up to 250). */
const PAGE_LIMIT = '250';
/** What a space holds that people write in: its pages and its blog posts (same shapes in API v2). */
const CONTENT = ['pages', 'blogposts'] as const;
/** Reply levels followed under a comment at most (the editor nests far less). */
const MAX_REPLY_DEPTH = 20;

export interface ConfluenceOptions {
  /** --since: only pages whose current version is newer, and only comments whose current version is newer. */
  since?: Date;
  /** Asked before each further list page: true ends the space's reading there (the scheduled scan's time budget). */
  stop?: () => boolean;
}

/** What reading one space came to (the scheduled scan's mark: lambda/handlers/collaboration-scan-confluence.ts). */
export interface ConfluenceSpaceOutcome {
  /** Every list of the space was read to its end (or to --since) and nothing in it failed. */
  complete: boolean;
  /** `stop` ended the reading before the end. */
  stopped?: boolean;
  /** The newest current-version time (epoch ms) of the pages and blog posts read. */
  newestModified?: number;
}

const Links = z.object({ next: z.string().optional(), webui: z.string().optional() }).optional();
const Version = z.object({ createdAt: z.string().optional(), authorId: z.string().optional() }).optional();
const Body = z
  .object({ storage: z.object({ value: z.string() }).optional() })
  .optional()
  .nullable();
const Space = z.object({ id: z.union([z.string(), z.number()]).transform(String), key: z.string() });
const SpacesPage = z.object({ results: z.array(Space), _links: Links });
const Item = z.object({
  id: z.union([z.string(), z.number()]).transform(String),
  title: z.string().optional(),
  authorId: z.string().optional(),
  version: Version,
  body: Body,
  _links: Links,
});
type Item = z.infer<typeof Item>;
const ListPage = z.object({ results: z.array(z.unknown()), _links: Links });

export interface ConfluenceStats {
  spaces: number;
  pages: number;
  blogposts: number;
  comments: number;
  calls: number;
  rateLimited: number;
  waitedMs: number;
}

/** Confluence Cloud spaces found with credentials the site accepted. */
export class ConfluenceSource {
  readonly stats: ConfluenceStats = {
    spaces: 0,
    pages: 0,
    blogposts: 0,
    comments: 0,
    calls: 0,
    rateLimited: 0,
    waitedMs: 0,
  };

  private constructor(
    private readonly http: SourceHttp,
    private readonly site: string,
    private readonly wanted: readonly string[],
    private readonly spaces: ReadonlyArray<z.infer<typeof Space>>,
  ) {}

  /**
   * Reads CONFLUENCE_URL (else JIRA_URL: one Atlassian site), JIRA_EMAIL and JIRA_API_TOKEN, and finds the spaces
   * by key; AtlassianAuthError when the credentials are missing or rejected.
   */
  static async open(keys: readonly string[], deps: AtlassianDeps = {}): Promise<ConfluenceSource> {
    const { site, http } = atlassianSite('--confluence', 'Confluence', ['CONFLUENCE_URL', 'JIRA_URL'], deps);
    const wanted = [...new Set(keys)];
    const spaces: Array<z.infer<typeof Space>> = [];
    const method = 'GET /wiki/api/v2/spaces';
    const probe = new ConfluenceSource(http, site, wanted, spaces);
    try {
      for await (const page of probe.pages(
        method,
        `${site}/wiki/api/v2/spaces?${new URLSearchParams({ keys: wanted.join(','), limit: PAGE_LIMIT })}`,
        SpacesPage,
      ))
        spaces.push(...page.results);
    } catch (err) {
      if (!(err instanceof SourceHttpError)) throw err;
      const rejected = rejectedCredentials(err.status);
      throw new AtlassianAuthError(
        rejected
          ? `Confluence ${method}: ${rejected}; nothing was scanned`
          : `${err.message}; nothing was scanned`,
      );
    }
    return probe;
  }

  private sync(): void {
    this.stats.calls = this.http.calls;
    this.stats.rateLimited = this.http.rateLimited;
    this.stats.waitedMs = this.http.waitedMs;
  }

  /** Every page of a cursor-paginated list, checked against `schema`, following `_links.next` on the site only. */
  private async *pages<T extends { _links?: { next?: string | undefined } | undefined }>(
    method: string,
    first: string,
    schema: z.ZodType<T>,
  ): AsyncGenerator<T> {
    const seen = new Set<string>();
    let next: string | undefined = first;
    while (next) {
      const url = this.onSite(method, next);
      let page: T;
      try {
        const parsed = schema.safeParse(await this.http.json(method, url));
        if (!parsed.success)
          throw new SourceHttpError(`Confluence ${method}: malformed answer (${issueText(parsed.error)})`);
        page = parsed.data;
      } finally {
        this.sync();
      }
      yield page;
      next = page._links?.next;
      if (next && seen.has(next)) throw new SourceHttpError(`Confluence ${method}: the same next link twice`);
      if (next) seen.add(next);
    }
  }

  /** A link from an answer, on the site: relative ones resolved against it, another origin refused. */
  private onSite(method: string, link: string): string {
    let url: URL;
    try {
      url = new URL(link, `${this.site}/`);
    } catch {
      throw new SourceHttpError(`Confluence ${method}: malformed next link`);
    }
    if (url.origin !== new URL(this.site).origin)
      throw new SourceHttpError(
        `Confluence ${method}: a next link to another origin (${url.origin.slice(0, 80)}) was not followed: ` +
          'the credentials go only to the site',
      );
    // The API paths are under /wiki; a link relative to the API base (/api/v2/…) is put back under it.
    if (url.pathname.startsWith('/api/v2/') && !new URL(this.site).pathname.endsWith('/wiki'))
      url.pathname = `/wiki${url.pathname}`;
    return url.toString();
  }

  /** Scans every page of each space (then its comments); a space or page that cannot be read is reported. */
  async scan(sink: TextSink, opts: ConfluenceOptions = {}): Promise<void> {
    for (const key of this.wanted)
      if (!this.spaces.some((s) => s.key === key))
        sink.fail(
          `Confluence space ${key}`,
          'no such space among those the account can see (GET /wiki/api/v2/spaces)',
        );
    for (const space of this.spaces)
      if (this.wanted.includes(space.key)) await this.scanSpace(sink, space.key, opts);
    this.sync();
  }

  /**
   * Scans one of the spaces opened (its pages and blog posts, newest first, then each one's comments); a space not
   * found, or a list or page that cannot be read, is reported to the sink and makes the outcome incomplete.
   */
  async scanSpace(
    sink: TextSink,
    key: string,
    opts: ConfluenceOptions = {},
  ): Promise<ConfluenceSpaceOutcome> {
    const outcome: ConfluenceSpaceOutcome = { complete: true };
    const counted: TextSink = {
      scan: (text) => sink.scan(text),
      fail: (at, reason) => {
        outcome.complete = false;
        sink.fail(at, reason);
      },
    };
    const space = this.spaces.find((s) => s.key === key);
    if (!space || !this.wanted.includes(key)) {
      counted.fail(
        `Confluence space ${key}`,
        'no such space among those the account can see (GET /wiki/api/v2/spaces)',
      );
      return outcome;
    }
    this.stats.spaces += 1;
    const shown = `Confluence space ${space.key}`;
    const params = new URLSearchParams({
      'body-format': 'storage',
      status: 'current',
      sort: '-modified-date',
      limit: PAGE_LIMIT,
    });
    // Pages, then blog posts: each list on its own, so one that fails leaves the other scanned.
    for (const content of CONTENT) {
      const method = `GET /wiki/api/v2/spaces/{id}/${content}`;
      try {
        let first = true;
        outer: for await (const page of this.pages(
          method,
          `${this.site}/wiki/api/v2/spaces/${encodeURIComponent(space.id)}/${content}?${params}`,
          ListPage,
        )) {
          if (!first && opts.stop?.()) {
            outcome.complete = false;
            outcome.stopped = true;
            break;
          }
          first = false;
          for (const [index, raw] of page.results.entries()) {
            const item = Item.safeParse(raw);
            if (!item.success) {
              counted.fail(
                shown,
                `item ${index + 1} of a ${content} list: malformed (${issueText(item.error)}); the others are scanned`,
              );
              continue;
            }
            // Newest first (sort=-modified-date): the first one older than --since ends the list.
            if (opts.since && olderThan(item.data, opts.since)) break outer;
            const modified = Date.parse(item.data.version?.createdAt ?? '');
            if (Number.isFinite(modified) && modified > (outcome.newestModified ?? Number.NEGATIVE_INFINITY))
              outcome.newestModified = modified;
            await this.page(counted, space.key, content, item.data, opts.since);
          }
        }
      } catch (err) {
        if (!(err instanceof SourceHttpError)) throw err;
        counted.fail(shown, `${err.message}; the rest is scanned`);
      }
      if (outcome.stopped) break;
    }
    this.sync();
    return outcome;
  }

  private async page(
    sink: TextSink,
    key: string,
    content: (typeof CONTENT)[number],
    page: Item,
    since: Date | undefined,
  ): Promise<void> {
    if (content === 'pages') this.stats.pages += 1;
    else this.stats.blogposts += 1;
    const link = this.webLink(
      page,
      `/spaces/${encodeURIComponent(key)}/${content === 'pages' ? 'pages' : 'blog'}/${encodeURIComponent(page.id)}`,
    );
    const text = [page.title ?? '', storageToText(page.body?.storage?.value ?? '')]
      .filter((t) => t)
      .join('\n');
    const scanned = sink.scan(text);
    if (scanned.found) scanned.take(link, page.version?.authorId ?? page.authorId);
    for (const kind of ['footer', 'inline'] as const) {
      const method = `GET /wiki/api/v2/${content}/{id}/${kind}-comments`;
      // Each comment, then its replies (breadth first, bounded in depth).
      const queue: Array<{ url: string; method: string; depth: number }> = [
        {
          url: `${this.site}/wiki/api/v2/${content}/${encodeURIComponent(page.id)}/${kind}-comments?body-format=storage&limit=${PAGE_LIMIT}`,
          method,
          depth: 0,
        },
      ];
      try {
        while (queue.length > 0) {
          const list = queue.shift() as (typeof queue)[number];
          for await (const p of this.pages(list.method, list.url, ListPage)) {
            for (const raw of p.results) {
              const comment = Item.safeParse(raw);
              if (!comment.success) {
                sink.fail(`Confluence ${link}`, `a ${kind} comment: malformed (${issueText(comment.error)})`);
                continue;
              }
              this.comment(sink, link, comment.data, since);
              if (list.depth < MAX_REPLY_DEPTH)
                queue.push({
                  url: `${this.site}/wiki/api/v2/${kind}-comments/${encodeURIComponent(comment.data.id)}/children?body-format=storage&limit=${PAGE_LIMIT}`,
                  method: `GET /wiki/api/v2/${kind}-comments/{id}/children`,
                  depth: list.depth + 1,
                });
            }
          }
        }
      } catch (err) {
        if (!(err instanceof SourceHttpError)) throw err;
        sink.fail(`Confluence ${link}`, `${err.message}; the page and its other comments are scanned`);
      }
    }
  }

  private comment(sink: TextSink, pageLink: string, comment: Item, since: Date | undefined): void {
    if (since && olderThan(comment, since)) return;
    this.stats.comments += 1;
    const scanned = sink.scan(storageToText(comment.body?.storage?.value ?? ''));
    if (!scanned.found) return;
    const own = comment._links?.webui;
    const link = own
      ? this.webLink(comment, '')
      : `${pageLink}?focusedCommentId=${encodeURIComponent(comment.id)}`;
    scanned.take(link, comment.version?.authorId ?? comment.authorId);
  }

  /** The item's web link (`_links.webui`, relative to the site's /wiki), else `fallback` there. */
  private webLink(item: Item, fallback: string): string {
    const webui = item._links?.webui;
    const path = webui?.startsWith('/') && !webui.startsWith('//') ? webui : fallback;
    return `${this.site}/wiki${path}`;
  }
}

/** Whether the item's current version was made before `since` (no date: not older, so it is scanned). */
function olderThan(item: Item, since: Date): boolean {
  const at = Date.parse(item.version?.createdAt ?? '');
  return Number.isFinite(at) && at < since.getTime();
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unexpected shape';
}

/** The --confluence values: repeatable, each a space key or a comma-separated list of them. */
export function spaceKeys(values: readonly string[]): string[] {
  return values
    .flatMap((v) => v.split(','))
    .map((k) => k.trim())
    .filter((k) => k !== '');
}

/** The summary line's Confluence part. */
export function confluenceSummary(s: ConfluenceStats): string {
  return (
    `keyguard scan: Confluence: ${plural(s.spaces, 'space')}, ${plural(s.pages, 'page')}, ` +
    `${plural(s.blogposts, 'blog post')}, ` +
    `${plural(s.comments, 'comment')} scanned; ${plural(s.calls, 'API call')}, ${s.rateLimited} rate-limited ` +
    `(waited ${Math.round(s.waitedMs / 1000)} s)\n`
  );
}
