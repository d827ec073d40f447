import { type CloudTrailRecord, CloudTrailRecordSchema, classifyRecord } from '../lambda/domain/cloudtrail';
import { type EvaluationContext, evaluate } from '../lambda/domain/evaluate';
import type { KeySnapshot } from '../lambda/domain/types';
import { parseConfig, policyVersion } from '../lambda/shared/config';
import { BENCH_ACCOUNT, KEY_EVENTS_PER_CYCLE, RecordFactory } from './cloudtrail-records';
import { type LoopResult, measureLoop } from './measure';
import { Prng, WeightedChoice } from './prng';
import { type Figure, num, progress, type Section } from './report';

/**
 * Speed of the pure domain in the current process: `evaluate()` over a varied set of key snapshots, and
 * `classifyRecord()` over CloudTrail records (the archive's mix, and IAM key events alone, with and without zod
 * validation). No esbuild or child-process imports here: evaluate-bundled.ts bundles this module.
 */

const SNAPSHOTS = 20_000;
const ARCHIVE_MIX_RECORDS = 20_000;
const KEY_EVENT_RECORDS = KEY_EVENTS_PER_CYCLE * 200;
const DAY_MS = 86_400_000;
const NOW = Date.UTC(2026, 10, 20, 9, 30);

type SnapshotKind =
  | 'compliant'
  | 'never-expires (no date)'
  | 'never-expires (2125)'
  | 'too long'
  | 'untagged'
  | 'inactive';

const KIND_MIX = new WeightedChoice<SnapshotKind>([
  ['compliant', 40],
  ['never-expires (no date)', 15],
  ['never-expires (2125)', 10],
  ['too long', 15],
  ['untagged', 15],
  ['inactive', 5],
]);

function snapshot(rng: Prng, kind: SnapshotKind, i: number): KeySnapshot {
  const created = NOW - rng.between(0, 60) * DAY_MS - rng.int(DAY_MS);
  const iso = (ms: number) => new Date(ms).toISOString();
  const fullTags = {
    owner: `owner-${rng.int(200)}@example.com`,
    purpose: rng.pick(['chat assistant', 'batch summaries', 'RAG retrieval']),
    'review-cadence': rng.pick(['monthly', 'quarterly']),
  };
  const partialTags: Record<string, string> = rng.chance(0.5) ? {} : { purpose: 'experiments', owner: '  ' };
  const base = {
    keyId: `ACCA${rng.upperAlnum(17)}`,
    userName: rng.chance(0.3) ? `BedrockAPIKey-${rng.alnum(4)}` : `svc-${i}`,
    accountId: BENCH_ACCOUNT,
    status: 'Active' as const,
    createdAt: iso(created),
    userTags: fullTags as Record<string, string>,
    creator: rng.chance(0.7) ? `arn:aws:iam::${BENCH_ACCOUNT}:user/alice-admin` : null,
  };
  switch (kind) {
    case 'compliant':
      return { ...base, expiresAt: iso(created + rng.pick([7, 30, 60, 90]) * DAY_MS) };
    case 'never-expires (no date)':
      return { ...base, expiresAt: null };
    case 'never-expires (2125)':
      return { ...base, expiresAt: iso(created + 36_500 * DAY_MS) };
    case 'too long':
      return { ...base, expiresAt: iso(created + rng.pick([180, 365, 1000]) * DAY_MS) };
    case 'untagged':
      return { ...base, userTags: partialTags, expiresAt: iso(created + 30 * DAY_MS) };
    case 'inactive':
      return { ...base, status: 'Inactive', expiresAt: null };
  }
}

function rate(label: string, result: LoopResult, unit: string, detail: string): Figure[] {
  const s = result.opsPerSecond;
  return [
    {
      metric: label,
      value: num(s.median),
      unit,
      detail: `${detail}; rounds min ${num(s.min)} / max ${num(s.max)}; ${num(1e9 / s.median, 0)} ns each`,
    },
  ];
}

export function measureDomain(): Section {
  const config = parseConfig({});
  const version = policyVersion(config);
  const rng = new Prng(0x65766131);

  progress('evaluate: building snapshots');
  const cases: Array<{ key: KeySnapshot; ctx: EvaluationContext }> = [];
  const kinds = new Map<SnapshotKind, number>();
  for (let i = 0; i < SNAPSHOTS; i++) {
    const kind = KIND_MIX.pick(rng);
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    const eventTime = new Date(NOW + i * 1000);
    const eventId = rng.uuid();
    cases.push({
      key: snapshot(rng, kind, i),
      ctx: {
        config,
        policyVersion: version,
        now: eventTime,
        trigger: {
          kind: 'event',
          eventId,
          eventName: 'CreateServiceSpecificCredential',
          eventTime: eventTime.toISOString(),
        },
        decisionId: `${eventTime.toISOString()}/event/${eventId}`,
      },
    });
  }
  const actions = new Map<string, number>();
  for (const c of cases) {
    const a = evaluate(c.key, c.ctx).action;
    actions.set(a, (actions.get(a) ?? 0) + 1);
  }

  progress('evaluate: measuring evaluate()');
  const evaluated = measureLoop(cases, (c) => evaluate(c.key, c.ctx).violations.length);

  progress('evaluate: building CloudTrail records');
  const factory = new RecordFactory(new Prng(0x636c6173));
  const at = (i: number) => NOW + i * 10;
  const archiveMix: CloudTrailRecord[] = [];
  for (let i = 0; i < ARCHIVE_MIX_RECORDS; i++) {
    archiveMix.push(CloudTrailRecordSchema.parse(factory.backgroundRecord(at(i))));
  }
  const keyEventsRaw: unknown[] = [];
  for (let i = 0; i < KEY_EVENT_RECORDS; i++) keyEventsRaw.push(factory.nextKeyEvent(at(i)).record);
  const keyEvents = keyEventsRaw.map((r) => CloudTrailRecordSchema.parse(r));
  const relevant = (r: CloudTrailRecord) => (classifyRecord(r).relevant ? 1 : 0);
  const iamShare = archiveMix.filter((r) => r.eventSource === 'iam.amazonaws.com').length / archiveMix.length;
  const keyRelevant = keyEvents.reduce((a, r) => a + relevant(r), 0);

  progress('evaluate: measuring classifyRecord()');
  const classifiedMix = measureLoop(archiveMix, relevant);
  const classifiedKeys = measureLoop(keyEvents, relevant);
  const parsedAndClassified = measureLoop(keyEventsRaw, (r) => relevant(CloudTrailRecordSchema.parse(r)));

  const kindText = [...kinds].map(([k, n]) => `${k} ${Math.round((n / SNAPSHOTS) * 100)}%`).join(', ');
  const actionText = [...actions].map(([k, n]) => `${k} ${Math.round((n / SNAPSHOTS) * 100)}%`).join(', ');
  return {
    title: 'Domain: evaluate() and classifyRecord() (single thread)',
    figures: [
      ...rate('evaluate()', evaluated, 'evaluations/s', `${num(SNAPSHOTS)} snapshots`),
      ...rate(
        'classifyRecord(), archive mix',
        classifiedMix,
        'records/s',
        `${num(ARCHIVE_MIX_RECORDS)} everyday records, ${(iamShare * 100).toFixed(1)}% IAM reads`,
      ),
      ...rate(
        'classifyRecord(), key events',
        classifiedKeys,
        'records/s',
        `${num(KEY_EVENT_RECORDS)} IAM key events, ${num(keyRelevant)} relevant`,
      ),
      ...rate(
        'zod parse + classifyRecord(), key events',
        parsedAndClassified,
        'records/s',
        'what replay pays per IAM key event',
      ),
    ],
    notes: [
      `policy: parseConfig({}) (${version}); snapshot mix: ${kindText}`,
      `resulting actions: ${actionText}`,
      'value = median of 9 rounds of ~250 ms each, after 3 warm-up passes; records are zod-parsed before timing ' +
        'except in the "zod parse +" row',
    ],
  };
}
