import { SourceHttp, type SourceHttpOptions } from './http';

/**
 * What `keyguard scan --jira` and `--confluence` share (issue 15 §2): Atlassian Cloud credentials (an account's
 * e-mail and API token, sent as HTTP Basic, as Atlassian documents for scripts:
 * https://developer.atlassian.com/cloud/jira/platform/basic-auth-for-rest-apis/), read from the environment only,
 * the site URL, and the words of Atlassian's error bodies (Jira: {"errorMessages": […], "errors": {…}};
 * Confluence v2: {"errors": [{"status", "code", "title", "detail"}]}; v1 and the gateway: {"message"}).
 */

/** The credentials are missing or Atlassian rejected them: the scan does not start. */
export class AtlassianAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AtlassianAuthError';
  }
}

export interface AtlassianDeps {
  env?: NodeJS.ProcessEnv;
  /** Tests: no real sleeping on Retry-After. */
  sleep?: (ms: number) => Promise<void>;
  /** Tests: the clock X-RateLimit-Reset is read against. */
  now?: () => number;
  timeoutMs?: number;
}

export interface AtlassianSite {
  /** The site URL without a trailing slash (https://acme.atlassian.net). */
  site: string;
  http: SourceHttp;
}

/**
 * The site URL from `urlVar` (or the first of `fallbackVars` that is set) and the credentials JIRA_EMAIL and
 * JIRA_API_TOKEN; AtlassianAuthError naming what is missing. One Atlassian API token serves Jira and Confluence.
 */
export function atlassianSite(
  flag: string,
  source: string,
  urlVars: readonly string[],
  deps: AtlassianDeps,
): AtlassianSite {
  const env = deps.env ?? process.env;
  const urlVar = urlVars.find((v) => env[v]?.trim());
  const email = env.JIRA_EMAIL?.trim();
  const token = env.JIRA_API_TOKEN?.trim();
  const missing = [
    ...(urlVar ? [] : [urlVars.join(' or ')]),
    ...(email ? [] : ['JIRA_EMAIL']),
    ...(token ? [] : ['JIRA_API_TOKEN']),
  ];
  if (!urlVar || !email || !token)
    throw new AtlassianAuthError(
      `${flag} needs the site URL and an Atlassian account's e-mail and API token in the environment ` +
        `(never flags): ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not set; nothing was scanned`,
    );
  const raw = (env[urlVar] ?? '').trim();
  const site = raw.replace(/\/+$/, '').replace(/\/wiki$/, '');
  if (!/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(site))
    throw new AtlassianAuthError(
      `${urlVar} ${JSON.stringify(raw.slice(0, 200))} is not an http(s) site URL (like https://acme.atlassian.net); ` +
        'nothing was scanned',
    );
  const basic = Buffer.from(`${email}:${token}`).toString('base64');
  const opts: SourceHttpOptions = {
    source,
    token,
    authorization: `Basic ${basic}`,
    secrets: [basic],
    errorDetail: atlassianErrorDetail,
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
    ...(deps.now ? { now: deps.now } : {}),
    ...(deps.timeoutMs !== undefined ? { timeoutMs: deps.timeoutMs } : {}),
  };
  return { site, http: new SourceHttp(opts) };
}

/** The messages of an Atlassian error body, joined; undefined when it is not one. */
export function atlassianErrorDetail(body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const o = parsed as Record<string, unknown>;
  const words: string[] = [];
  if (Array.isArray(o.errorMessages))
    for (const m of o.errorMessages) if (typeof m === 'string') words.push(m);
  if (o.errors && typeof o.errors === 'object' && !Array.isArray(o.errors))
    for (const [field, m] of Object.entries(o.errors))
      if (typeof m === 'string') words.push(`${field}: ${m}`);
  if (Array.isArray(o.errors))
    for (const e of o.errors) {
      if (!e || typeof e !== 'object') continue;
      const { title, detail, code } = e as Record<string, unknown>;
      const text = [title, detail].filter((t) => typeof t === 'string' && t !== '').join(': ');
      if (text || typeof code === 'string') words.push(text || String(code));
    }
  if (words.length === 0 && typeof o.message === 'string') words.push(o.message);
  return words.length > 0 ? words.join('; ').replace(/\s+/g, ' ') : undefined;
}

/** What a rejected credential means, for the one line that stops the scan. */
export function rejectedCredentials(status: number | undefined): string | undefined {
  if (status === 401)
    return 'JIRA_EMAIL and JIRA_API_TOKEN were rejected (HTTP 401: wrong e-mail, or a revoked or expired token)';
  if (status === 403)
    return (
      'the account was refused (HTTP 403: no access to this site or product, or a CAPTCHA after failed logins: ' +
      'sign in once in a browser)'
    );
  return undefined;
}

/** `n word(s)`. */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
