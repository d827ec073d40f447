import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from './loopback-server';

/**
 * A fake Confluence Cloud site on loopback (test code, not product), answering the REST API v2 shapes `keyguard scan
 * --confluence` uses, all under /wiki: /api/v2/spaces?keys=, /api/v2/spaces/{id}/pages and blogposts
 * (body-format=storage, status, sort=-modified-date), /api/v2/{pages|blogposts}/{id}/footer-comments and
 * inline-comments, and
 * /api/v2/{footer|inline}-comments/{id}/children. Lists are {"results": […], "_links": {"next": "/wiki/api/v2/…?cursor=…",
 * "base": "<site>/wiki"}}; errors are {"errors": [{"status", "code", "title", "detail"}]}; credentials are HTTP Basic.
 */

export interface FakeConfluenceComment {
  id: string;
  storage: string;
  authorId?: string;
  createdAt: string;
  replies?: FakeConfluenceComment[];
}

export interface FakeConfluencePage {
  id: string;
  title: string;
  storage: string;
  authorId?: string;
  /** The current version's time (last modified). */
  modifiedAt: string;
  footer?: FakeConfluenceComment[];
  inline?: FakeConfluenceComment[];
  /** Sent as it is instead of the page (a malformed list item). */
  raw?: unknown;
}

export interface FakeConfluenceSpace {
  id: string;
  key: string;
  pages: FakeConfluencePage[];
  blogposts?: FakeConfluencePage[];
  /** The pages list of this space answers a body that is not JSON, echoing the credentials. */
  malformed?: boolean;
  /** The pages list of this space answers a next link to this (another) origin. */
  foreignNext?: string;
}

export interface FakeConfluenceRequest {
  path: string;
  params: URLSearchParams;
  auth: string | undefined;
}

export class FakeConfluence extends LoopbackServer {
  readonly requests: FakeConfluenceRequest[] = [];
  spaces: FakeConfluenceSpace[] = [];
  /** Items a list page holds. */
  pageSize = 2;
  rateLimitOnce: { path: string; headers: Record<string, string> } | undefined;
  /** Every request answers this status (401, 403) as Atlassian does for rejected credentials. */
  rejectWith: number | undefined;
  /** The comments of this page id answer HTTP 500 (v2 error body). */
  brokenComments: string | undefined;

  constructor(
    private readonly email: string,
    private readonly token: string,
  ) {
    super();
  }

  reset(): void {
    this.requests.length = 0;
    this.rateLimitOnce = undefined;
    this.rejectWith = undefined;
    this.brokenComments = undefined;
    this.pageSize = 2;
  }

  calls(path: string | RegExp): FakeConfluenceRequest[] {
    return this.requests.filter((r) => (typeof path === 'string' ? r.path === path : path.test(r.path)));
  }

  protected answer(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', this.url);
    const path = url.pathname;
    const p = url.searchParams;
    this.requests.push({ path, params: p, auth: req.headers.authorization });
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const error = (status: number, code: string, title: string) =>
      json(status, { errors: [{ status, code, title, detail: null }] });
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
      res.end(
        JSON.stringify({ errors: [{ status: 429, code: 'TOO_MANY_REQUESTS', title: 'Rate limited' }] }),
      );
      return;
    }
    /** One cursor page of `items`: the cursor is the next offset, the next link keeps the query. */
    const list = (items: unknown[]) => {
      const from = Number(p.get('cursor') ?? '0');
      const size = Math.min(this.pageSize, Number(p.get('limit') ?? '25'));
      const links: Record<string, string> = { base: `${this.url}/wiki` };
      if (from + size < items.length) {
        const next = new URLSearchParams(p);
        next.set('cursor', String(from + size));
        links.next = `${path}?${next}`;
      }
      res.setHeader('link', links.next ? `<${links.next}>; rel="next"` : '');
      return json(200, { results: items.slice(from, from + size), _links: links });
    };
    if (path === '/wiki/api/v2/spaces') {
      const keys = (p.get('keys') ?? '').split(',');
      return list(
        this.spaces
          .filter((s) => keys.includes(s.key))
          .map((s) => ({ id: s.id, key: s.key, name: `${s.key} space`, type: 'global', status: 'current' })),
      );
    }
    const pages = /^\/wiki\/api\/v2\/spaces\/([^/]+)\/(pages|blogposts)$/.exec(path);
    if (pages?.[2] === 'blogposts') {
      const space = this.spaces.find((s) => s.id === pages[1]);
      if (!space) return error(404, 'NOT_FOUND', 'Space not found');
      return list(
        (space.blogposts ?? []).map((post) => this.page(space, post, p.get('body-format'), 'blog')),
      );
    }
    if (pages) {
      const space = this.spaces.find((s) => s.id === pages[1]);
      if (!space) return error(404, 'NOT_FOUND', 'Space not found');
      if (space.malformed) {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(`<html>proxy error for ${req.headers.authorization}</html>`);
        return;
      }
      if (space.foreignNext)
        return json(200, { results: [], _links: { next: `${space.foreignNext}/wiki/api/v2/x` } });
      const sorted = [...space.pages];
      if (p.get('sort') === '-modified-date')
        sorted.sort((a, b) => Date.parse(b.modifiedAt) - Date.parse(a.modifiedAt));
      return list(sorted.map((page) => page.raw ?? this.page(space, page, p.get('body-format'))));
    }
    const comments = /^\/wiki\/api\/v2\/(?:pages|blogposts)\/([^/]+)\/(footer|inline)-comments$/.exec(path);
    if (comments) {
      const [, id, kind] = comments;
      if (this.brokenComments === id) return error(500, 'INTERNAL_SERVER_ERROR', 'Internal Server Error');
      const found = this.findPage(id ?? '');
      if (!found) return error(404, 'NOT_FOUND', 'Page not found');
      const all = (kind === 'footer' ? found.page.footer : found.page.inline) ?? [];
      return list(all.map((c) => this.comment(found.space, found.page, c, kind ?? '')));
    }
    const children = /^\/wiki\/api\/v2\/(footer|inline)-comments\/([^/]+)\/children$/.exec(path);
    if (children) {
      const [, kind, id] = children;
      const found = this.findComment(id ?? '');
      if (!found) return error(404, 'NOT_FOUND', 'Comment not found');
      return list(
        (found.comment.replies ?? []).map((c) => this.comment(found.space, found.page, c, kind ?? '')),
      );
    }
    error(404, 'NOT_FOUND', `no such resource ${path}`);
  }

  private page(
    space: FakeConfluenceSpace,
    page: FakeConfluencePage,
    format: string | null,
    kind: 'pages' | 'blog' = 'pages',
  ): unknown {
    return {
      id: page.id,
      status: 'current',
      title: page.title,
      spaceId: space.id,
      authorId: page.authorId,
      createdAt: page.modifiedAt,
      version: { number: 3, createdAt: page.modifiedAt, authorId: page.authorId, message: '' },
      ...(format === 'storage'
        ? { body: { storage: { representation: 'storage', value: page.storage } } }
        : {}),
      _links: {
        webui: `/spaces/${space.key}/${kind === 'blog' ? 'blog/2026/11/20' : 'pages'}/${page.id}/${encodeURIComponent(page.title.replace(/ /g, '+'))}`,
        editui: `/pages/resumedraft.action?draftId=${page.id}`,
        tinyui: `/x/${page.id}`,
      },
    };
  }

  private comment(
    space: FakeConfluenceSpace,
    page: FakeConfluencePage,
    c: FakeConfluenceComment,
    kind: string,
  ): unknown {
    return {
      id: c.id,
      status: 'current',
      title: `Re: ${page.title}`,
      pageId: page.id,
      version: { number: 1, createdAt: c.createdAt, authorId: c.authorId },
      body: { storage: { representation: 'storage', value: c.storage } },
      ...(kind === 'inline' ? { resolutionStatus: 'open' } : {}),
      _links: { webui: `/spaces/${space.key}/pages/${page.id}/?focusedCommentId=${c.id}#comment-${c.id}` },
    };
  }

  private findPage(id: string): { space: FakeConfluenceSpace; page: FakeConfluencePage } | undefined {
    for (const space of this.spaces) {
      const page = [...space.pages, ...(space.blogposts ?? [])].find((p) => p.id === id);
      if (page) return { space, page };
    }
    return undefined;
  }

  private findComment(
    id: string,
  ): { space: FakeConfluenceSpace; page: FakeConfluencePage; comment: FakeConfluenceComment } | undefined {
    const walk = (list: FakeConfluenceComment[]): FakeConfluenceComment | undefined => {
      for (const c of list) {
        if (c.id === id) return c;
        const deeper = walk(c.replies ?? []);
        if (deeper) return deeper;
      }
      return undefined;
    };
    for (const space of this.spaces)
      for (const page of [...space.pages, ...(space.blogposts ?? [])]) {
        const comment = walk([...(page.footer ?? []), ...(page.inline ?? [])]);
        if (comment) return { space, page, comment };
      }
    return undefined;
  }
}
