import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import {
  CollaborationScanState,
  collaborationScanStateTableDefinition,
} from '../../lambda/adapters/collaboration-scan-state';
import { type EmbeddedDynamo, ensureTables } from '../../lambda/adapters/embedded-dynamodb';
import type { ScanReportDetail } from '../../lambda/domain/scan-report';
import type { Decision } from '../../lambda/domain/types';
import { createLeakHandler } from '../../lambda/handlers/leak-handler';
import { type Capture, captureOutput } from './capture';
import { scanAll } from './dynamo';
import { ACCOUNT, lambdaContext } from './events';
import { leakRuntime } from './leak-harness';

/**
 * What the scheduled collaboration scans' tests (Slack, Jira, Confluence; handlers, end to end and security) share:
 * the scan state table on one dynalite per file, the fake source's life, the bus accepting every entry, the runtime
 * fields every source's scan takes, a Lambda context with a chosen time left, and the real leak function the bus's
 * entries are delivered to. Each test file owns its mocks (mockClient at module level); the harness only programs
 * and reads them.
 */

/** The governance bus the scans put their reports on. */
export const GOVERNANCE_BUS = `arn:aws:events:us-east-1:${ACCOUNT}:event-bus/bedrock-key-guard-governance`;

/**
 * Registers the file's beforeAll/afterAll: starts `fake` (a loopback Slack, Jira or Confluence) and `startDynamo`,
 * creates the scan state table `table`, and stops both after the file. The returned getter gives the dynalite.
 */
export function useScanState(
  fake: { start(): Promise<unknown>; stop(): Promise<unknown> },
  table: string,
  startDynamo: () => Promise<EmbeddedDynamo>,
): () => EmbeddedDynamo {
  let db: EmbeddedDynamo | undefined;
  beforeAll(async () => {
    await fake.start();
    db = await startDynamo();
    await ensureTables(db.client, [collaborationScanStateTableDefinition(table)]);
  });
  afterAll(async () => {
    await fake.stop();
    await db?.close();
  });
  return () => {
    if (!db) throw new Error('useScanState: the dynalite is not started yet (use it inside a test or hook)');
    return db;
  };
}

/**
 * Registers a beforeEach that captures stdout/stderr (Powertools' logs and metrics) for the test, and an afterEach
 * that restores them; the returned Capture reads the current test's output.
 */
export function captureEachTest(): Capture {
  let current: Capture | undefined;
  beforeEach(() => {
    current = captureOutput();
  });
  afterEach(() => current?.restore());
  const capture = () => {
    if (!current) throw new Error('captureEachTest: no test is running');
    return current;
  };
  return { text: () => capture().text(), lines: () => capture().lines(), restore: () => capture().restore() };
}

/** Deletes every item of the scan state table (one dynalite for the file). */
export async function clearScanState(db: EmbeddedDynamo, table: string): Promise<void> {
  for (const item of await scanAll(db, table))
    await db.doc.send(new DeleteCommand({ TableName: table, Key: { source: item.source, id: item.id } }));
}

/** The bus accepts every entry put, each with its own event id. */
export function acceptPutEvents(eventBridge: AwsClientStub<EventBridgeClient>): void {
  eventBridge.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map((_, i) => ({ EventId: `evt-${i}` })),
  }));
}

/** Every entry put on the bus, in order. */
export function busEntries(eventBridge: AwsClientStub<EventBridgeClient>): PutEventsRequestEntry[] {
  return eventBridge.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
}

/** The scan report of every entry put on the bus, in order. */
export function busDetails(eventBridge: AwsClientStub<EventBridgeClient>): ScanReportDetail[] {
  return busEntries(eventBridge).map((e) => JSON.parse(e.Detail ?? '{}') as ScanReportDetail);
}

/** The EMF metric `name` Powertools wrote to the captured output, if any. */
export function emfMetric(out: Capture, name: string): number | undefined {
  for (const line of out.lines()) {
    const aws = line._aws as { CloudWatchMetrics?: Array<{ Metrics: Array<{ Name: string }> }> } | undefined;
    if (aws?.CloudWatchMetrics?.some((m) => m.Metrics.some((x) => x.Name === name)))
      return line[name] as number;
  }
  return undefined;
}

/** A Lambda context with `remaining` milliseconds left (a number, or asked afresh at every call). */
export function scanContext(remaining: number | (() => number) = 600_000): Context {
  return {
    ...lambdaContext(),
    getRemainingTimeInMillis: typeof remaining === 'number' ? () => remaining : remaining,
  };
}

/**
 * The runtime fields every source's scheduled scan takes: real SDK clients (mocked by the file), its state in
 * `table` under `source`, the governance bus, Powertools logger and metrics, the clock at `now`, no waiting.
 */
export function scanRuntimeBase(
  db: EmbeddedDynamo,
  opts: { table: string; source: string; now: Date; busArn?: string },
) {
  return {
    secrets: new SecretsManagerClient({ region: 'us-east-1' }),
    state: new CollaborationScanState(db.doc, opts.table, opts.source),
    eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
    busArn: opts.busArn ?? GOVERNANCE_BUS,
    logger: new Logger({ serviceName: 'keyguard-collaboration-scan' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-collaboration-scan' }),
    now: () => opts.now,
    sleep: async () => undefined,
  };
}

/**
 * The real leak function in `enforce` mode on fresh tables (Bedrock answering 200), fed from the bus: `deliver`
 * hands each entry put so far to it as the stack's rule delivers it (then forgets them) and says how many;
 * `decisions` lists what it recorded (not the audit chain).
 */
export async function leakOverTheBus(
  db: EmbeddedDynamo,
  eventBridge: AwsClientStub<EventBridgeClient>,
  now: Date,
): Promise<{ deliver(): Promise<number>; decisions(): Promise<Decision[]> }> {
  const rt = await leakRuntime(db, {
    fetch: async () => new Response('{}', { status: 200 }),
    now,
    probeTimeoutMs: 500,
  });
  const leak = createLeakHandler(rt);
  return {
    async deliver() {
      const entries = busEntries(eventBridge);
      eventBridge.resetHistory();
      for (const [i, e] of entries.entries())
        await leak({
          id: `delivery-${i}-${e.Detail?.length}`,
          source: e.Source,
          'detail-type': e.DetailType,
          account: ACCOUNT,
          time: now.toISOString(),
          detail: JSON.parse(e.Detail as string),
        });
      return entries.length;
    },
    async decisions() {
      return (await scanAll(db, rt.decisionsTable)).filter(
        (i) => !String(i.pk).startsWith('chain#'),
      ) as unknown as Decision[];
    },
  };
}
