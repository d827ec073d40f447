import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from './loopback-server';

/**
 * A fake Jira Cloud site on loopback (test code, not product), answering the shapes of the platform REST API v3
 * that `keyguard scan --jira` uses: /rest/api/3/myself, the enhanced search /rest/api/3/search/jql (pages of
 * `issues` with `nextPageToken` and `isLast`), and /rest/api/3/issue/{key}/comment (`startAt`, `maxResults`,
 * `total`, `comments`). Errors are Jira's {"errorMessages": […], "errors": {}}; credentials are HTTP Basic.
 */

export interface FakeJiraUser {
  accountId: string;
  displayName?: string;
}

export interface FakeJiraComment {
  id: string;
  author?: FakeJiraUser;
  /** ADF (or anything, for hostile tests). */
  body: unknown;
  created: string;
  updated?: string;
}

export interface FakeJiraIssue {
  id: string;
  key: string;
  summary: string;
  description: unknown;
  reporter?: FakeJiraUser;
  updated: string;
  comments: FakeJiraComment[];
  /** Sent as it is instead of the issue (a malformed search result). */
  raw?: unknown;
}

export interface FakeJiraRequest {
  path: string;
  params: URLSearchParams;
  auth: string | undefined;
}

/** An ADF document of paragraphs, one per line of `text`. */
export function adf(...lines: string[]): unknown {
  return {
    type: 'doc',
    version: 1,
    content: lines.map((line) => ({ type: 'paragraph', content: [{ type: 'text', text: line }] })),
  };
}

export class FakeJira extends LoopbackServer {
  readonly requests: FakeJiraRequest[] = [];
  issues: FakeJiraIssue[] = [];
  /** Issues a search page holds. */
  searchPage = 2;
  /** Comments embedded in a search result's `comment` field (the rest through /comment). */
  embeddedComments = 2;
  /** Comments a /comment page holds. */
  commentPage = 2;
  /** The first request to this path answers HTTP 429 with these headers. */
  rateLimitOnce: { path: string; headers: Record<string, string> } | undefined;
  /** The search page with this token (or '' for the first) answers a body that is not JSON, echoing the credentials. */
  malformedSearch: string | undefined;
  /** /comment of this issue key answers HTTP 500. */
  brokenComments: string | undefined;
  /** Every request answers this status (401, 403) as Atlassian does for rejected credentials. */
  rejectWith: number | undefined;
  /** The search answers HTTP 400 with this JQL error. */
  jqlError: string | undefined;

  constructor(
    private readonly email: string,
    private readonly token: string,
    /** The site's clock, for `updated >= "-Nm"` in the JQL. */
    private readonly now: Date,
  ) {
    super();
  }

  reset(): void {
    this.requests.length = 0;
    this.rateLimitOnce = undefined;
    this.malformedSearch = undefined;
    this.brokenComments = undefined;
    this.rejectWith = undefined;
    this.jqlError = undefined;
    this.searchPage = 2;
    this.embeddedComments = 2;
    this.commentPage = 2;
  }

  calls(path: string): FakeJiraRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  protected answer(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', this.url);
    const path = url.pathname;
    this.requests.push({ path, params: url.searchParams, auth: req.headers.authorization });
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const expected = `Basic ${Buffer.from(`${this.email}:${this.token}`).toString('base64')}`;
    if (this.rejectWith !== undefined || req.headers.authorization !== expected) {
      res.writeHead(this.rejectWith ?? 401, { 'content-type': 'text/plain' });
      res.end('Client must be authenticated to access this resource.');
      return;
    }
    if (this.rateLimitOnce?.path === path) {
      const { headers } = this.rateLimitOnce;
      this.rateLimitOnce = undefined;
      res.writeHead(429, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify({ errorMessages: ['Rate limit exceeded.'], errors: {} }));
      return;
    }
    const p = url.searchParams;
    if (path === '/rest/api/3/myself')
      return json(200, { accountId: '557058:scanner', displayName: 'Key scanner', active: true });
    if (path === '/rest/api/3/search/jql') {
      if (this.jqlError)
        return json(400, { errorMessages: [this.jqlError], errors: {}, warningMessages: [] });
      const token = p.get('nextPageToken') ?? '';
      if (this.malformedSearch === token) {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(`<html>gateway error for ${req.headers.authorization}</html>`);
        return;
      }
      const from = token ? Number(Buffer.from(token, 'base64url').toString().replace('page-', '')) : 0;
      const selected = this.select(p.get('jql') ?? '');
      const slice = selected.slice(from, from + this.searchPage);
      const last = from + this.searchPage >= selected.length;
      return json(200, {
        issues: slice.map((i) => i.raw ?? this.searchIssue(i, (p.get('fields') ?? '').split(','))),
        ...(last
          ? {}
          : { nextPageToken: Buffer.from(`page-${from + this.searchPage}`).toString('base64url') }),
        isLast: last,
      });
    }
    const comment = /^\/rest\/api\/3\/issue\/([^/]+)\/comment$/.exec(path);
    if (comment) {
      const issue = this.issues.find((i) => i.key === decodeURIComponent(comment[1] ?? ''));
      if (!issue)
        return json(404, {
          errorMessages: ['Issue does not exist or you do not have permission to see it.'],
          errors: {},
        });
      if (this.brokenComments === issue.key)
        return json(500, { errorMessages: ['Internal server error'], errors: {} });
      const startAt = Number(p.get('startAt') ?? '0');
      const max = Math.min(Number(p.get('maxResults') ?? '50'), this.commentPage);
      return json(200, {
        startAt,
        maxResults: max,
        total: issue.comments.length,
        comments: issue.comments.slice(startAt, startAt + max).map((c) => this.comment(issue, c)),
      });
    }
    json(404, { errorMessages: [`no such resource ${path}`], errors: {} });
  }

  /**
   * The issues a JQL selects: all, or those of `project = "KEY"`, and of those the ones updated within
   * `updated >= "-Nm"` of the site's clock (compared to the minute, as Jira does).
   */
  private select(jql: string): FakeJiraIssue[] {
    const project = /project = "([A-Z][A-Z0-9_]*)"/.exec(jql)?.[1];
    const inProject = project ? this.issues.filter((i) => i.key.startsWith(`${project}-`)) : this.issues;
    const window = /updated >= "-(\d+)m"/.exec(jql);
    if (!window) return inProject;
    const minute = (ms: number) => Math.floor(ms / 60_000);
    const from = minute(this.now.getTime()) - Number(window[1]);
    return inProject.filter((i) => minute(Date.parse(i.updated)) >= from);
  }

  private searchIssue(issue: FakeJiraIssue, fields: string[]): unknown {
    const f: Record<string, unknown> = {};
    if (fields.includes('summary')) f.summary = issue.summary;
    if (fields.includes('description')) f.description = issue.description;
    if (fields.includes('reporter')) f.reporter = issue.reporter ?? null;
    if (fields.includes('updated')) f.updated = issue.updated;
    if (fields.includes('comment'))
      f.comment = {
        comments: issue.comments.slice(0, this.embeddedComments).map((c) => this.comment(issue, c)),
        self: `${this.url}/rest/api/3/issue/${issue.id}/comment`,
        maxResults: this.embeddedComments,
        total: issue.comments.length,
        startAt: 0,
      };
    return {
      expand: '',
      id: issue.id,
      self: `${this.url}/rest/api/3/issue/${issue.id}`,
      key: issue.key,
      fields: f,
    };
  }

  private comment(issue: FakeJiraIssue, c: FakeJiraComment): unknown {
    return {
      self: `${this.url}/rest/api/3/issue/${issue.id}/comment/${c.id}`,
      id: c.id,
      author: c.author ?? null,
      body: c.body,
      created: c.created,
      updated: c.updated ?? c.created,
      jsdPublic: true,
    };
  }
}
