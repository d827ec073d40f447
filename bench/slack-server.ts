import { performance } from 'node:perf_hooks';
import { FakeSlack } from '../test/support/fake-slack';
import { lazyWorkspace, planWorkspace, SLACK_BENCH_TOKEN } from './slack-workspace';

/**
 * The Slack benchmark's fake Slack Web API in a process of its own (forked by slack.bench.ts), so the time it
 * spends building and serialising pages is not counted against the scanner. Argv: channels, messages. Messages
 * over IPC:
 * - `{ type: 'limits', perMinute }`: from now on each method answers 429 beyond `perMinute[method]` requests
 *   per minute (fixed one-minute windows per method, as Slack applies its tiers "per method per workspace per
 *   app"), with Retry-After up to the window's end. Time is simulated: the clock is real time plus every
 *   Retry-After it has asked for (the client is sequential and waits exactly that long, with an injected sleep
 *   that does not really sleep). Counts and the clock are reset. `perMinute` null: no limits.
 * - `{ type: 'stats' }`: answers `{ type: 'stats', counts, tooMany, retryAfterSeconds, clockMs }`.
 */

interface Limits {
  type: 'limits';
  perMinute: Record<string, number> | null;
}

async function main(): Promise<void> {
  const [channels, messages] = process.argv.slice(2).map(Number);
  const plan = planWorkspace(channels ?? 200, messages ?? 500_000);
  const slack = new FakeSlack({
    token: SLACK_BENCH_TOKEN,
    pageSizes: { channels: 'limit', history: 'limit', replies: 'limit' },
    record: false,
  });
  const ws = lazyWorkspace(plan, () => slack.url);
  slack.channels = ws.channels;
  slack.threads = ws.threads;
  slack.files = ws.files;

  let perMinute: Record<string, number> | null = null;
  let start = performance.now();
  let offsetMs = 0;
  let tooMany = 0;
  let retryAfterSeconds = 0;
  const windows = new Map<string, { index: number; count: number }>();
  const clock = () => performance.now() - start + offsetMs;
  slack.rateLimit = (method) => {
    const limit = perMinute?.[method];
    if (limit === undefined) return undefined;
    const now = clock();
    const index = Math.floor(now / 60_000);
    const w = windows.get(method) ?? { index, count: 0 };
    if (w.index !== index) {
      w.index = index;
      w.count = 0;
    }
    windows.set(method, w);
    if (w.count < limit) {
      w.count += 1;
      return undefined;
    }
    const wait = Math.max(1, Math.ceil(((index + 1) * 60_000 - now) / 1000));
    offsetMs += wait * 1000;
    tooMany += 1;
    retryAfterSeconds += wait;
    return wait;
  };

  process.on('message', (msg: Limits | { type: 'stats' }) => {
    if (msg.type === 'limits') {
      perMinute = msg.perMinute;
      start = performance.now();
      offsetMs = 0;
      tooMany = 0;
      retryAfterSeconds = 0;
      windows.clear();
      slack.counts.clear();
      process.send?.({ type: 'ok' });
    } else if (msg.type === 'stats') {
      process.send?.({
        type: 'stats',
        counts: Object.fromEntries(slack.counts),
        tooMany,
        retryAfterSeconds,
        clockMs: clock(),
      });
    }
  });
  // The benchmark is done with it: nothing to keep (open keep-alive sockets would delay a close).
  process.on('disconnect', () => process.exit(0));
  await slack.start();
  process.send?.({ type: 'ready', url: slack.url });
}

void main();
