import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runScan } from '../lambda/cli/scan';
import { runChild } from './processes';
import { type Figure, num, progress, type Section } from './report';
import { CLI } from './scan-tools';
import {
  type PlantedSlackKey,
  planWorkspace,
  SLACK_BENCH_TOKEN,
  type WorkspacePlan,
} from './slack-workspace';

/**
 * `npm run bench -- --only slack` (issue 15): `keyguard scan --slack` over a fake Slack workspace (200 channels,
 * 500,000 messages with planted keys; bench/slack-workspace.ts) served on loopback by the fake Slack Web API of
 * the tests (test/support/fake-slack.ts) in a process of its own (bench/slack-server.ts).
 *
 * 1. Reference, same run: a fetch-only client reading the same pages (conversations.list, every history page,
 *    every thread's replies, the text files) and parsing their JSON, scanning nothing: the floor any Slack
 *    scanner pays for the API on this machine.
 * 2. keyguard: `node dist/keyguard.js scan --slack --format json` (the built CLI, as users run it) with no rate
 *    limits: messages per second, API calls by method, recall of the planted keys (by permalink and
 *    fingerprint), anything reported that was not planted; its wall time as a multiple of the floor's.
 * 3. The documented tiers, simulated: the same scan (the real Slack source, in process, its Retry-After sleep
 *    injected so it does not really sleep) against the fake answering 429 beyond the per-minute limits of
 *    Slack's tiers for Marketplace and internal apps, on a simulated clock: time waited on rate limits and how
 *    long the scan of a real workspace of this size would take.
 * 4. Non-Marketplace commercially distributed apps (Slack's 2025 change: conversations.history and
 *    conversations.replies at 1 request per minute and at most 15 objects per page): estimated from the plan
 *    by a model of the source's sequential calls (too slow to simulate call by call in a benchmark run).
 */

const SERVER = resolve(__dirname, 'slack-server.ts');

/**
 * Slack's documented per-minute limits (https://docs.slack.dev/apis/web-api/rate-limits and each method's
 * page): the floor of each tier ("20+", "50+" per minute). chat.getPermalink is in the special tier (no number
 * published; modelled at 100 per minute); file downloads have no published tier (not limited here).
 */
export const SLACK_TIERS: Record<string, number> = {
  'auth.test': 100, // Tier 4: 100+ per minute
  'conversations.list': 20, // Tier 2: 20+
  'conversations.history': 50, // Tier 3: 50+ (Marketplace and internal customer-built apps)
  'conversations.replies': 50, // Tier 3: 50+
  'chat.getPermalink': 100, // special tier, modelled
};
/** Non-Marketplace commercially distributed apps since 2025-05-29 (existing installations since 2026-03-03). */
const NON_MARKETPLACE = { perMinute: 1, pageLimit: 15 };
/** The page size keyguard asks for (scan-sources/slack.ts PAGE_LIMIT). */
const KEYGUARD_PAGE = 200;

export interface SlackBenchOptions {
  channels: number;
  messages: number;
}

interface ServerStats {
  counts: Record<string, number>;
  tooMany: number;
  retryAfterSeconds: number;
  clockMs: number;
}

class Server {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(opts: SlackBenchOptions): Promise<Server> {
    const child = fork(SERVER, [String(opts.channels), String(opts.messages)], {
      execArgv: ['--require', require.resolve('tsx/cjs')],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const url = await new Promise<string>((ok, fail) => {
      child.once('message', (m: { type: string; url: string }) => ok(m.url));
      child.once('exit', (code) =>
        fail(new Error(`the fake Slack server exited (${code}) before it was ready`)),
      );
    });
    return new Server(child, url);
  }

  private ask<T>(msg: unknown, reply: string): Promise<T> {
    return new Promise<T>((ok) => {
      const on = (m: { type: string }) => {
        if (m.type !== reply) return;
        this.child.off('message', on);
        ok(m as T);
      };
      this.child.on('message', on);
      this.child.send(msg as object);
    });
  }

  limits(perMinute: Record<string, number> | null): Promise<unknown> {
    return this.ask({ type: 'limits', perMinute }, 'ok');
  }

  stats(): Promise<ServerStats> {
    return this.ask({ type: 'stats' }, 'stats');
  }

  stop(): void {
    this.child.disconnect();
  }
}

/** Calls by method, the file downloads counted as one method. */
function byMethod(counts: Record<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [method, n] of Object.entries(counts)) {
    const name = method.startsWith('files/') ? 'files (url_private_download)' : method;
    out.set(name, (out.get(name) ?? 0) + n);
  }
  return out;
}

function total(m: Map<string, number>): number {
  return [...m.values()].reduce((a, b) => a + b, 0);
}

function duration(ms: number): string {
  const s = ms / 1000;
  if (s < 120) return `${num(s, 1)} s`;
  if (s < 7200) return `${num(s / 60, 1)} min`;
  if (s < 172_800) return `${num(s / 3600, 1)} h`;
  return `${num(s / 86_400, 1)} days`;
}

/** The reference: every page fetched and parsed, nothing scanned. Returns the messages read. */
async function fetchOnly(url: string): Promise<{ wallMs: number; messages: number; calls: number }> {
  const t0 = performance.now();
  let calls = 0;
  let messages = 0;
  const get = async (path: string): Promise<Record<string, unknown>> => {
    calls += 1;
    const res = await fetch(`${url}/${path}`, { headers: { authorization: `Bearer ${SLACK_BENCH_TOKEN}` } });
    return (await res.json()) as Record<string, unknown>;
  };
  const pages = async function* (method: string, params: Record<string, string>) {
    let cursor = '';
    do {
      const q = new URLSearchParams({
        ...params,
        limit: String(KEYGUARD_PAGE),
        ...(cursor ? { cursor } : {}),
      });
      const page = await get(`${method}?${q}`);
      yield page;
      cursor = (page.response_metadata as { next_cursor?: string } | undefined)?.next_cursor ?? '';
    } while (cursor);
  };
  const channels: string[] = [];
  for await (const page of pages('conversations.list', {}))
    for (const c of page.channels as Array<{ id: string }>) channels.push(c.id);
  for (const channel of channels)
    for await (const page of pages('conversations.history', { channel }))
      for (const m of page.messages as Array<{
        ts: string;
        reply_count?: number;
        files?: Array<{ id: string }>;
      }>) {
        messages += 1;
        for (const f of m.files ?? []) {
          calls += 1;
          await (await fetch(`${url}/files/${f.id}/notes.txt`)).text();
        }
        if (m.reply_count)
          for await (const replies of pages('conversations.replies', { channel, ts: m.ts }))
            messages += (replies.messages as unknown[]).filter(
              (r) => (r as { ts: string }).ts !== m.ts,
            ).length;
      }
  return { wallMs: performance.now() - t0, messages, calls };
}

interface Finding {
  path: string;
  fingerprint: string;
}

function recall(planted: readonly PlantedSlackKey[], findings: readonly Finding[]) {
  const expected = new Set(planted.map((p) => `${p.fingerprint} ${p.permalink}`));
  const found = new Set(findings.map((f) => `${f.fingerprint} ${f.path}`));
  const hit = [...expected].filter((e) => found.has(e)).length;
  const unexpected = [...found].filter((f) => !expected.has(f)).length;
  return { hit, expected: expected.size, unexpected };
}

function parseFindings(stdout: string): Finding[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Finding);
}

/**
 * The source's calls in order for a non-Marketplace app (history and replies at most `perMinute` each, pages of
 * at most `pageLimit`), on a clock that waits until a method's next slot: how long the scan would take.
 */
export function nonMarketplaceEstimate(
  plan: WorkspacePlan,
  opts = NON_MARKETPLACE,
): { historyCalls: number; repliesCalls: number; ms: number } {
  const gap = 60_000 / opts.perMinute;
  let t = 0;
  let nextHistory = 0;
  let nextReplies = 0;
  let historyCalls = 0;
  let repliesCalls = 0;
  for (const ch of plan.channels) {
    // Newest first, pages of pageLimit; each thread read right after the page holding its parent.
    const newestFirst = [...ch.replies].reverse();
    for (let p = 0; p < Math.max(1, Math.ceil(newestFirst.length / opts.pageLimit)); p += 1) {
      t = Math.max(t, nextHistory);
      nextHistory = t + gap;
      historyCalls += 1;
      for (const n of newestFirst.slice(p * opts.pageLimit, (p + 1) * opts.pageLimit)) {
        for (let r = 0; n > 0 && r < Math.ceil((n + 1) / opts.pageLimit); r += 1) {
          t = Math.max(t, nextReplies);
          nextReplies = t + gap;
          repliesCalls += 1;
        }
      }
    }
  }
  return { historyCalls, repliesCalls, ms: t };
}

export async function runSlackBench(options: SlackBenchOptions): Promise<Section> {
  const tPlan = performance.now();
  const plan = planWorkspace(options.channels, options.messages);
  const planMs = performance.now() - tPlan;
  progress(
    `Slack: ${num(plan.channels.length)} channels, ${num(plan.messages)} messages (${num(plan.topLevel)} top-level, ` +
      `${num(plan.replies)} replies in ${num(plan.threads)} threads), ${num(plan.files)} text files, ` +
      `${plan.planted.length} planted keys`,
  );
  const server = await Server.start(options);
  const cwd = mkdtempSync(join(tmpdir(), 'bench-slack-'));
  try {
    // 1. The fetch-only floor.
    await server.limits(null);
    progress('Slack: fetch-only reference (every page read and parsed, nothing scanned)');
    const floor = await fetchOnly(server.url);
    if (floor.messages !== plan.messages)
      throw new Error(`fetch-only read ${floor.messages} messages; the workspace has ${plan.messages}`);

    // 2. keyguard, the built CLI, no rate limits.
    await server.limits(null);
    progress('Slack: node dist/keyguard.js scan --slack --format json');
    const run = await runChild({
      command: process.execPath,
      args: [CLI, 'scan', '--slack', '--format', 'json'],
      cwd,
      env: {
        ...process.env,
        SLACK_TOKEN: SLACK_BENCH_TOKEN,
        SLACK_API_URL: server.url,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
      captureStdout: true,
      peakRss: true,
    });
    if (run.exitCode !== 1)
      throw new Error(
        `keyguard scan --slack exited ${run.exitCode} (expected 1: keys found): ${run.stderr.trim()}`,
      );
    const calls = byMethod((await server.stats()).counts);
    const found = recall(plan.planted, parseFindings(run.stdoutText));
    const summary = /Slack: .*\n/.exec(run.stderr)?.[0]?.trim() ?? '(no summary line)';

    // 3. The documented tiers (Marketplace and internal apps), simulated.
    await server.limits(SLACK_TIERS);
    progress('Slack: the same scan in process against the fake answering 429 at the documented tier limits');
    let sleptMs = 0;
    const out = { text: '', err: '' };
    const t3 = performance.now();
    const code = await runScan(
      [],
      { slack: true, format: 'json' },
      {
        cwd,
        stdout: { write: (s: string) => (out.text += s) },
        stderr: { write: (s: string) => (out.err += s) },
      },
      {
        now: () => new Date(),
        chunkSize: 1024 * 1024,
        gitBinary: 'git',
        version: 'bench',
        slack: {
          env: { SLACK_TOKEN: SLACK_BENCH_TOKEN, SLACK_API_URL: server.url },
          sleep: async (ms) => {
            sleptMs += ms;
          },
        },
      },
    );
    const tierWallMs = performance.now() - t3;
    const tier = await server.stats();
    const tierFound = recall(plan.planted, parseFindings(out.text));
    if (code !== 1) throw new Error(`the rate-limited scan exited ${code}: ${out.err.trim()}`);

    // 4. Non-Marketplace apps, estimated.
    const nm = nonMarketplaceEstimate(plan);

    const perSecond = (plan.messages / run.wallMs) * 1000;
    const figures: Figure[] = [
      {
        metric: 'keyguard scan --slack vs fetch-only floor',
        value: num(run.wallMs / floor.wallMs, 2),
        unit: '×',
        detail: `wall time ratio, same run (keyguard ${duration(run.wallMs)}, floor ${duration(floor.wallMs)})`,
      },
      {
        metric: 'messages scanned per second',
        value: num(perSecond),
        unit: 'msg/s',
        detail: `${num(plan.messages)} messages (incl. ${num(plan.replies)} thread replies) over loopback, no rate limits; floor ${num((plan.messages / floor.wallMs) * 1000)} msg/s`,
      },
      {
        metric: 'recall of planted keys',
        value: num((100 * found.hit) / found.expected, 1),
        unit: '%',
        detail: `${found.hit} of ${found.expected} (message text, thread replies, bot attachments, text files; by permalink and fingerprint); ${found.unexpected} reported that were not planted`,
      },
      {
        metric: 'API calls',
        value: num(total(calls)),
        unit: 'calls',
        detail: [...calls].map(([m, n]) => `${m} ${num(n)}`).join(', '),
      },
      {
        metric: 'peak RSS of keyguard',
        value: run.maxRssKb === null ? 'n/a' : num(run.maxRssKb / 1024, 0),
        unit: 'MiB',
        detail: `${run.rssSource}; the workspace is generated lazily by the fake (plan made in ${num(planMs)} ms)`,
      },
      {
        metric: 'documented tiers: estimated scan time',
        value: duration(tier.clockMs),
        unit: '',
        detail: `simulated clock: ${tier.tooMany} answers 429, the source waited ${duration(sleptMs)} on Retry-After (fake asked ${duration(tier.retryAfterSeconds * 1000)}); recall ${tierFound.hit}/${tierFound.expected}; real work ${duration(tierWallMs)}`,
      },
      {
        metric: 'documented tiers: time waiting on rate limits',
        value: num((100 * sleptMs) / Math.max(1, tier.clockMs), 1),
        unit: '%',
        detail: `of the simulated scan time; lower bound from the busiest method: ${lowerBound(calls)}`,
      },
      {
        metric: 'non-Marketplace app (2025 limits): estimated',
        value: duration(nm.ms),
        unit: '',
        detail: `${num(nm.historyCalls)} conversations.history + ${num(nm.repliesCalls)} conversations.replies calls at ${NON_MARKETPLACE.perMinute}/min each, ${NON_MARKETPLACE.pageLimit} objects per page`,
      },
    ];
    return {
      title: `Slack scan (${num(plan.channels.length)} channels, ${num(plan.messages)} messages, fake Web API on loopback)`,
      figures,
      notes: [
        `keyguard's own summary: ${summary}`,
        'Reference: a fetch-only client in the benchmark process reading every page and file keyguard reads ' +
          `(${num(floor.calls)} requests) and parsing their JSON, scanning nothing. The fake serves each page from ` +
          'a lazily built workspace in its own process (bench/slack-server.ts), so neither side pays for the other.',
        `Tiers (docs.slack.dev rate limits, the floor of each): conversations.list Tier 2 (20/min), conversations.history ` +
          'and conversations.replies Tier 3 (50/min) for Marketplace and internal customer-built apps, chat.getPermalink ' +
          'special tier (modelled 100/min), auth.test Tier 4; limits apply per method per workspace per app, modelled as ' +
          'fixed one-minute windows answering 429 with Retry-After up to the window end. The simulated clock is the ' +
          'real time of the run plus every Retry-After waited; loopback has no network round trips: at an assumed ' +
          `100 ms per call, add ${duration(total(calls) * 100)}.`,
        'Non-Marketplace, commercially distributed apps (Slack changelog 2025-05-29; existing installations from ' +
          '2026-03-03): conversations.history and conversations.replies at 1 request per minute, limit at most 15. ' +
          'Estimated by replaying the plan through the order of the source’s calls (history pages newest first, each ' +
          'thread read after the page holding its parent), each method waiting for its next slot.',
        `Workspace: channel sizes skewed (weight 1/rank^0.8: the largest channel has ${num(plan.channels[0]?.replies.length ?? 0)} top-level messages), ` +
          `about 4 % of messages start a thread of 1–30 replies, one key per ~1,000 messages in the scan corpus's contexts ` +
          '(plain, quoted, JSON-escaped, URL-encoded) inside code blocks, decoys in ~0.2 %; seeded (bench/prng.ts).',
      ],
    };
  } finally {
    server.stop();
    rmSync(cwd, { recursive: true, force: true });
  }
}

/**
 * The busiest limited method's calls (without 429s) against its per-minute limit: no scan can be faster. With
 * fixed one-minute windows the last window's calls need not wait, so n calls take at least floor((n - 1) / limit)
 * minutes.
 */
function lowerBound(calls: Map<string, number>): string {
  let worst = { method: '', minutes: 0 };
  for (const [method, limit] of Object.entries(SLACK_TIERS)) {
    const n = calls.get(method) ?? 0;
    const minutes = n > 0 ? Math.floor((n - 1) / limit) : 0;
    if (minutes > worst.minutes) worst = { method, minutes };
  }
  return `${worst.method} ${duration(worst.minutes * 60_000)}`;
}
