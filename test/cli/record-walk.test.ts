import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { scanFile, splitRecords, splitRecordsFlagged } from '../../lambda/cli/archive-scan';
import type { InputFile } from '../../lambda/cli/inputs';
import {
  BEDROCK_NEEDLE,
  HAS_BEDROCK,
  HAS_IAM,
  IAM_NEEDLE,
  RecordWalker,
  wasmApi,
} from '../../lambda/cli/record-walk';
import { REPLAY_FILTER, runReplay } from '../../lambda/cli/replay';
import { captureIO, createKeyRecord, jsonLines, removeTempDirs, tempDir, writeFile } from './helpers';

/**
 * The WebAssembly record walk (record-walk.ts) against the JavaScript one it replaces (issue 13): the same
 * record spans, the same "this record's bytes contain the IAM source / the Bedrock word" as Buffer.indexOf over
 * the whole file finds, on generated and hostile files, and the same scan and replay results either way.
 */

afterAll(removeTempDirs);

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pieces that matter to the walk: structure, escapes, the needles whole, cut, and their anchor bytes. */
const PIECES = [
  '"',
  '\\',
  '\\\\',
  '\\"',
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  ' ',
  '\n',
  'z',
  'k',
  'a',
  'é',
  '🙂',
  IAM_NEEDLE,
  BEDROCK_NEEDLE,
  'iam.ama',
  'zonaws.com',
  'bedroc',
  'iam.amazonaws.co',
  'bedrock-mantle.amazonaws.com',
  '"},{"eventSource":"iam.amazonaws.com"}',
];

function text(rand: () => number, parts: number): string {
  let s = '';
  for (let i = 0; i < parts; i++) s += PIECES[Math.floor(rand() * PIECES.length)] as string;
  return s;
}

function value(rand: () => number, depth: number): unknown {
  const r = rand();
  if (depth > 3 || r < 0.4) return text(rand, Math.floor(rand() * 6));
  if (r < 0.5) return Math.floor(rand() * 1000) - 500;
  if (r < 0.55) return rand() < 0.5 ? null : true;
  if (r < 0.75) return Array.from({ length: Math.floor(rand() * 4) }, () => value(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(rand() * 5); i > 0; i--)
    o[text(rand, 1 + Math.floor(rand() * 2))] = value(rand, depth + 1);
  return o;
}

/** A `{"Records": [...]}` file, sometimes damaged (a byte changed, inserted or the end cut off). */
function document(rand: () => number): Buffer {
  const records = Array.from({ length: Math.floor(rand() * 6) }, () => ({
    [text(rand, 1)]: value(rand, 1),
    ...(value(rand, 0) as object),
  }));
  const pretty = rand() < 0.3 ? 2 : undefined;
  let s = JSON.stringify(
    { ...(rand() < 0.2 ? { before: value(rand, 2) } : {}), Records: records },
    null,
    pretty,
  );
  // Needles outside strings too (not JSON, but the walk must agree on it).
  if (rand() < 0.2) s = s.replace(/,/, `,${rand() < 0.5 ? IAM_NEEDLE : BEDROCK_NEEDLE},`);
  const damage = rand();
  if (damage < 0.15) s = s.slice(0, Math.floor(rand() * s.length));
  else if (damage < 0.3) {
    const at = Math.floor(rand() * s.length);
    s = s.slice(0, at) + (PIECES[Math.floor(rand() * 12)] as string) + s.slice(at + (rand() < 0.5 ? 1 : 0));
  }
  return Buffer.from(s, 'utf8');
}

/** What the JavaScript walk and Buffer.indexOf over the whole file say, as the WebAssembly walk reports it. */
function reference(b: Buffer): { spans: number[]; flags: number[] } | null {
  const spans = splitRecords(b);
  if (spans === null) return null;
  const has = (needle: string, start: number, end: number) => {
    const at = b.indexOf(needle, start);
    return at >= 0 && at + needle.length <= end;
  };
  const flags: number[] = [];
  for (let k = 0; k < spans.length; k += 2) {
    const start = spans[k] as number;
    const end = spans[k + 1] as number;
    flags.push(
      (has(IAM_NEEDLE, start, end) ? HAS_IAM : 0) | (has(BEDROCK_NEEDLE, start, end) ? HAS_BEDROCK : 0),
    );
  }
  return { spans, flags };
}

function walked(b: Buffer, walker: RecordWalker): { spans: number[]; flags: number[] | null } | null {
  walker.load(b);
  return splitRecordsFlagged(b, walker);
}

function input(dir: string, name: string, content: string | Buffer): InputFile {
  const absolute = writeFile(join(dir, name), content);
  return { display: name, absolute, bytes: Buffer.byteLength(content) };
}

describe('RecordWalker (WebAssembly) against the JavaScript walk', () => {
  it('is available on this Node (else replay walks in JavaScript)', () => {
    expect(wasmApi).toBeDefined();
  });

  it('finds the same spans and the same needles in 3,000 generated and damaged files', () => {
    // Prepare
    const rand = prng(13);
    const walker = new RecordWalker();
    const mismatches: string[] = [];
    let withRecords = 0;
    let flagged = 0;

    // Act
    for (let n = 0; n < 3000; n++) {
      const b = document(rand);
      const want = reference(b);
      const got = walked(b, walker);
      if (want !== null) withRecords++;
      flagged += want?.flags.filter((f) => f !== 0).length ?? 0;
      if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push(b.toString('utf8'));
    }

    // Assess: the generator reaches both outcomes, and records with and without needles.
    expect(mismatches.slice(0, 3)).toEqual([]);
    expect(withRecords).toBeGreaterThan(1000);
    expect(withRecords).toBeLessThan(3000);
    expect(flagged).toBeGreaterThan(500);
  });

  it('finds needles at the very edges of the data and of a record, and ends strings at the data end', () => {
    // Prepare
    const walker = new RecordWalker();
    const cases = [
      `{"Records":[{"${IAM_NEEDLE}":1}]}`,
      `{"Records":[{"a":"${BEDROCK_NEEDLE}"}]}`,
      `{"Records":[{"a":"x"},{"b":"${IAM_NEEDLE}"}]}`,
      `{"Records":[{"a":"\\\\"},{"b":"${BEDROCK_NEEDLE}\\""}]}`,
      `{"Records":[{"a":"${IAM_NEEDLE.slice(0, 7)}"},{"b":"${IAM_NEEDLE.slice(7)}"}]}`,
      '{"Records":[{"a":"unterminated\\',
      '{"Records":[{"a":"unterminated\\"}]}',
      '{"Records":[{"a":"z"}]}',
      '{"Records":[{"a":"k"}]}',
    ];

    // Act
    const results = cases.map((c) => {
      const b = Buffer.from(c, 'utf8');
      return [walked(b, walker), reference(b)];
    });

    // Assess
    for (const [got, want] of results) expect(got).toEqual(want);
    expect(results.map(([got]) => got?.flags ?? null)).toEqual([
      [HAS_IAM],
      [HAS_BEDROCK],
      [0, HAS_IAM],
      [0, HAS_BEDROCK],
      [0, 0],
      null,
      null,
      [0],
      [0],
    ]);
  });

  it('reuses its memory for a smaller file after a larger one, and grows for a larger one', () => {
    // Prepare
    const walker = new RecordWalker();
    const big = Buffer.from(JSON.stringify({ Records: [{ a: 'x'.repeat(200_000), s: IAM_NEEDLE }] }));
    const small = Buffer.from('{"Records":[{"a":1}]}');

    // Act
    const results = [big, small, big].map((b) => walked(b, walker));

    // Assess: the small file's end is its own, not the big file's bytes left in memory.
    expect(results[0]?.flags).toEqual([HAS_IAM]);
    expect(results[1]).toEqual({ spans: [12, 19], flags: [0] });
    expect(results[2]).toEqual(results[0]);
  });
});

describe('scanFile: the same scan whichever walk runs', () => {
  it('gives the same entries, counts and problems for a hostile CloudTrail file', async () => {
    // Prepare: a forged record inside a string, escaped quotes before needles, Bedrock calls with and without
    // an API key, an IAM call replay does not follow, a record over the record limit, and a key event.
    const forged = JSON.stringify(
      createKeyRecord('2026-11-20T09:00:00Z', 'svc-forged', 'ACCAFORGED0000000001'),
    );
    const records = [
      { eventSource: 's3.amazonaws.com', eventName: 'GetObject', note: `"},${forged},{"x":"` },
      {
        eventSource: 's3.amazonaws.com',
        eventName: 'PutObject',
        note: `\\"${IAM_NEEDLE}\\" ${BEDROCK_NEEDLE}`,
      },
      { eventSource: 'bedrock.amazonaws.com', eventName: 'InvokeModel', additionalEventData: {} },
      {
        eventSource: 'bedrock.amazonaws.com',
        eventName: 'InvokeModel',
        additionalEventData: { callWithBearerToken: true },
      },
      { eventSource: 'iam.amazonaws.com', eventName: 'ListUsers' },
      createKeyRecord('2026-11-20T10:00:00Z', 'svc-real', 'ACCAREAL000000000001'),
    ];
    const dir = tempDir();
    const file = input(dir, 'trail.json.gz', gzipSync(JSON.stringify({ Records: records })));

    // Act
    const wasm = await scanFile(file, REPLAY_FILTER);
    const js = await scanFile(file, REPLAY_FILTER, { jsWalk: true });

    // Assess
    expect(wasm).toEqual(js);
    expect(wasm.records).toBe(6);
    // The S3 call quoting the IAM source is an unsupported event (its text names IAM), as it always was.
    expect(wasm.skipped).toEqual({ 'not-iam': 0, 'unsupported-event': 2, 'not-bearer-token': 1 });
    // The forged text stays inside its record: parsed as that record (an S3 call), never as a key event.
    const names = wasm.entries.map((e) => e.value.eventName);
    expect(names).toEqual(['GetObject', 'InvokeModel', 'CreateServiceSpecificCredential']);
  });
});

describe('replay: the forged record and the real one, whatever --jobs', () => {
  it('decides the real key event only, with the same output for --jobs 1 and 2', async () => {
    // Prepare
    const forged = JSON.stringify(
      createKeyRecord('2026-11-20T09:00:00Z', 'svc-forged', 'ACCAFORGED0000000002'),
    );
    const root = tempDir();
    const log = (name: string, records: unknown[]) =>
      writeFile(join(root, name), gzipSync(JSON.stringify({ Records: records })));
    log('a.json.gz', [
      { eventSource: 's3.amazonaws.com', eventName: 'GetObject', note: `"},${forged},{"x":"` },
    ]);
    log('b.json.gz', [createKeyRecord('2026-11-20T10:00:00Z', 'svc-real', 'ACCAREAL000000000002')]);
    writeFile(join(root, 'c.json.gz'), gzipSync('{"Records":[{"a":1}]}').subarray(0, 20));
    const runs = [1, 2].map(() => captureIO(root));

    // Act
    const codes: number[] = [];
    for (const [i, jobs] of [1, 2].entries()) {
      const run = runs[i] as ReturnType<typeof captureIO>;
      codes.push(await runReplay(['.'], { json: true, store: tempDir(), jobs }, run.io));
    }

    // Assess
    expect(codes).toEqual([2, 2]);
    const [one, two] = runs.map((r) => [r.stdout(), r.stderr().replace(/store \S+$/m, 'store <dir>')]);
    expect(two).toEqual(one);
    expect(jsonLines(one?.[0] ?? '').map((d) => d.userName)).toEqual(['svc-real']);
    expect(one?.[1]).toMatch(/^keyguard: c\.json\.gz: cannot decompress \(gzip\): unexpected end of file$/m);
  });
});

describe('scanFile: the followed event names, quoted or escaped', () => {
  it('takes a record naming one as a whole string, plain or escaped, and no longer or shorter name', async () => {
    // Prepare
    const iam = { eventSource: 'iam.amazonaws.com' };
    const lines = [
      { ...iam, eventName: 'TagUser' },
      { eventJson: JSON.stringify({ ...iam, eventName: 'UntagUser' }) },
      { ...iam, eventName: 'TagUsers' },
      { ...iam, eventName: 'TagUse' },
      { ...iam, eventName: 'ListUsers', note: 'run CreateUser' },
    ];
    const dir = tempDir();
    const ndjson = input(dir, 'events.jsonl', lines.map((l) => JSON.stringify(l)).join('\n'));
    const records = input(dir, 'trail.json', JSON.stringify({ Records: lines }));

    // Act
    const scans = [await scanFile(ndjson, REPLAY_FILTER), await scanFile(records, REPLAY_FILTER)];

    // Assess
    for (const scan of scans) {
      expect(scan.records).toBe(5);
      expect(scan.skipped['unsupported-event']).toBe(3);
      expect(scan.entries).toHaveLength(2);
    }
  });
});
