import { fingerprint } from '../lambda/shared/redact';
import type { FakeSlackChannel, FakeSlackMessage, FakeSlackMessages } from '../test/support/fake-slack';
import { Prng } from './prng';
import { decoyLine, type FileType, longTermKey, plantedLine, shortTermKey } from './scan-lines';

/**
 * The Slack benchmark's workspace (issue 15): channels of a deterministic (seeded) size, messages and thread
 * replies with planted keys, built lazily. The plan (how many messages each channel has, which are thread
 * parents with how many replies, where keys are planted) is small and made up front; the message text is made
 * from its own seed only when the fake server is asked for it, so a workspace of millions of messages never
 * sits in memory. Both the benchmark and the fake server's process make the same plan from the same seed.
 */

export const SLACK_SEED = 0x51ac_2026;
/** The token the fake accepts (a fake Slack user token shape, never a real one). */
export const SLACK_BENCH_TOKEN = 'xoxp-0000-bench-fake-token';
/** Top-level messages are a minute apart from this instant, per channel; replies 1–59 s after their parent. */
const T0 = 1_700_000_000;
/** One key planted per this many messages (top-level, replies), on average. */
const KEY_EVERY = 1000;
const THREAD_CHANCE = 0.04;
const MAX_REPLIES = 30;
const FILE_CHANCE = 0.004;
const DECOY_CHANCE = 0.002;

export type PlantPlace = 'message' | 'reply' | 'attachment' | 'file';

/** A planted key where the scan must find it: the location keyguard reports (a permalink), never the key. */
export interface PlantedSlackKey {
  place: PlantPlace;
  permalink: string;
  fingerprint: string;
}

interface ChannelPlan {
  id: string;
  name: string;
  /** Replies of each top-level message (0: not a thread parent); oldest first. */
  replies: number[];
}

export interface WorkspacePlan {
  channels: ChannelPlan[];
  /** Messages in all: top-level plus replies (exactly the asked number). */
  messages: number;
  topLevel: number;
  replies: number;
  threads: number;
  /** Text snippets posted as files (with or without a key). */
  files: number;
  planted: PlantedSlackKey[];
  /** Planted keys by `${channel index}:${message index}:${reply index or -1}`, for the message builder. */
  keys: Map<string, { place: PlantPlace; key: string; type: FileType }>;
}

function channelId(c: number): string {
  return `C${String(c).padStart(6, '0')}`;
}

function tsOf(i: number, c: number, reply = -1): string {
  return `${T0 + i * 60 + reply + 1}.${String(c).padStart(6, '0')}`;
}

function permalink(c: number, ts: string): string {
  return `https://acme.slack.com/archives/${channelId(c)}/p${ts.replace('.', '')}`;
}

function fileId(c: number, i: number): string {
  return `F${c}x${i}`;
}

function filePermalink(c: number, i: number): string {
  return `https://acme.slack.com/files/U0BENCH/${fileId(c, i)}/notes.txt`;
}

const CONTEXT_TYPES: readonly FileType[] = ['env', 'yaml', 'sh', 'py', 'textlog', 'jsonlog'];

/**
 * The plan: `messages` split over `channels` channels (sizes skewed as real workspaces are: a few busy
 * channels, a long tail), each channel's messages as top-level ones with a thread now and then.
 */
export function planWorkspace(channels: number, messages: number, seed = SLACK_SEED): WorkspacePlan {
  const rng = new Prng(seed);
  const weights = Array.from({ length: channels }, (_, c) => 1 / (c + 1) ** 0.8);
  const sum = weights.reduce((a, b) => a + b, 0);
  const sizes = weights.map((w) => Math.floor((messages * w) / sum));
  let rest = messages - sizes.reduce((a, b) => a + b, 0);
  for (let c = 0; rest > 0; c = (c + 1) % channels, rest -= 1) sizes[c] = (sizes[c] ?? 0) + 1;
  const plan: WorkspacePlan = {
    channels: [],
    messages,
    topLevel: 0,
    replies: 0,
    threads: 0,
    files: 0,
    planted: [],
    keys: new Map(),
  };
  const plant = (c: number, i: number, reply: number, place: PlantPlace) => {
    const long = rng.chance(0.5);
    const key = long ? longTermKey(rng) : shortTermKey(rng);
    const type = rng.pick(CONTEXT_TYPES);
    plan.keys.set(`${c}:${i}:${reply}`, { place, key, type });
    plan.planted.push({
      place,
      permalink: place === 'file' ? filePermalink(c, i) : permalink(c, tsOf(i, c, reply)),
      fingerprint: fingerprint(key),
    });
  };
  for (let c = 0; c < channels; c += 1) {
    let left = sizes[c] ?? 0;
    const replies: number[] = [];
    while (left > 0) {
      const i = replies.length;
      left -= 1;
      let n = 0;
      if (left > 0 && rng.chance(THREAD_CHANCE)) n = Math.min(left, rng.between(1, MAX_REPLIES));
      left -= n;
      replies.push(n);
      if (n > 0) plan.threads += 1;
      if (rng.chance(1 / KEY_EVERY)) plant(c, i, -1, rng.pick(['message', 'message', 'attachment', 'file']));
      else if (rng.chance(FILE_CHANCE))
        plan.keys.set(`${c}:${i}:-1`, { place: 'file', key: '', type: 'env' });
      for (let r = 0; r < n; r += 1) if (rng.chance(1 / KEY_EVERY)) plant(c, i, r, 'reply');
    }
    plan.topLevel += replies.length;
    plan.replies += replies.reduce((a, b) => a + b, 0);
    plan.channels.push({ id: channelId(c), name: `team-${c}`, replies });
  }
  for (const k of plan.keys.values()) if (k.place === 'file') plan.files += 1;
  return plan;
}

const WORDS = [
  'deploy build staging prod rollback review merge ticket lunch standup incident alert metrics latency model',
  'bedrock claude prompt eval dataset pipeline schema migration cache queue retry timeout region quota budget',
  'the a to and of for on it is we can please thanks looks good ship it tomorrow today again see above',
]
  .join(' ')
  .split(' ');

function prose(rng: Prng, words: number): string {
  const out: string[] = [];
  for (let w = 0; w < words; w += 1) out.push(rng.pick(WORDS));
  return out.join(' ');
}

/** A message's own seed: the same message is the same text on every request and run. */
function messageRng(c: number, i: number, reply: number): Prng {
  return new Prng(
    (SLACK_SEED ^ Math.imul(c + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b) ^ (reply + 2)) >>> 0,
  );
}

/** The text of a message, with the planted key (in a code block, in one of the scan corpus's contexts). */
function textOf(rng: Prng, planted: { key: string; type: FileType } | undefined): string {
  const text = prose(rng, rng.between(3, 40));
  if (planted) {
    const line = plantedLine(rng, planted.type, planted.key).text;
    return `${text}\n\`\`\`\n${line}\n\`\`\`\n${prose(rng, 5)}`;
  }
  if (rng.chance(DECOY_CHANCE)) return `${text}\n${decoyLine(rng, 'textlog').text}`;
  return text;
}

/** The fake Slack's channels, threads and files for `plan`, every message made on demand. */
export function lazyWorkspace(
  plan: WorkspacePlan,
  fileBase: () => string,
): {
  channels: FakeSlackChannel[];
  threads: { get(key: string): FakeSlackMessages | undefined };
  files: { get(path: string): string | undefined };
} {
  const message = (c: number, i: number): FakeSlackMessage | undefined => {
    const ch = plan.channels[c];
    const replyCount = ch?.replies[i];
    if (!ch || replyCount === undefined) return undefined;
    const rng = messageRng(c, i, -1);
    const planted = plan.keys.get(`${c}:${i}:-1`);
    const ts = tsOf(i, c);
    const m: FakeSlackMessage = { ts, text: '', user: `U${String(rng.int(500)).padStart(5, '0')}` };
    if (planted?.place === 'attachment') {
      delete m.user;
      m.bot_id = 'B0CIBOT';
      m.text = 'CI job failed';
      m.attachments = [{ fallback: 'build log', text: textOf(rng, planted) }];
    } else {
      m.text = textOf(rng, planted?.place === 'message' ? planted : undefined);
    }
    if (planted?.place === 'file')
      m.files = [
        {
          id: fileId(c, i),
          name: 'notes.txt',
          mimetype: 'text/plain',
          filetype: 'text',
          mode: 'snippet',
          size: 2048,
          url_private_download: `${fileBase()}/files/${fileId(c, i)}/notes.txt`,
          permalink: filePermalink(c, i),
          user: m.user,
        },
      ];
    if (replyCount > 0) {
      m.thread_ts = ts;
      m.reply_count = replyCount;
    }
    return m;
  };
  const reply = (c: number, i: number, r: number): FakeSlackMessage => {
    const rng = messageRng(c, i, r);
    const planted = plan.keys.get(`${c}:${i}:${r}`);
    return {
      ts: tsOf(i, c, r),
      thread_ts: tsOf(i, c),
      text: textOf(rng, planted),
      user: `U${String(rng.int(500)).padStart(5, '0')}`,
    };
  };
  const channels: FakeSlackChannel[] = plan.channels.map((ch, c) => ({
    id: ch.id,
    name: ch.name,
    messages: { length: ch.replies.length, at: (i: number) => message(c, i) },
  }));
  return {
    channels,
    threads: {
      get(key: string) {
        // `${channel}:${parent ts}`: the channel index and the message index are in the ts (see tsOf).
        const m = /^C(\d{6}):(\d+)\.(\d{6})$/.exec(key);
        if (!m) return undefined;
        const c = Number(m[1]);
        const i = (Number(m[2]) - T0) / 60;
        const n = plan.channels[c]?.replies[i];
        if (!n) return undefined;
        const parent = message(c, i);
        return {
          length: n + 1,
          at: (k: number) => (k === 0 ? parent : k <= n ? reply(c, i, k - 1) : undefined),
        };
      },
    },
    files: {
      get(path: string) {
        const m = /^files\/F(\d+)x(\d+)\/notes\.txt$/.exec(path);
        if (!m) return undefined;
        const c = Number(m[1]);
        const i = Number(m[2]);
        const planted = plan.keys.get(`${c}:${i}:-1`);
        const rng = messageRng(c, i, -3);
        const lines = Array.from(
          { length: 30 },
          () => `${rng.pick(['#', 'export', 'NOTE'])} ${prose(rng, 8)}`,
        );
        if (planted?.key) lines.splice(rng.int(30), 0, plantedLine(rng, planted.type, planted.key).text);
        return `${lines.join('\n')}\n`;
      },
    },
  };
}
