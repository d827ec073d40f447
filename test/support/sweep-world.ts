import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { IAMClient } from '@aws-sdk/client-iam';
import { SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import type { AwsStub } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import { type EmbeddedDynamo, ensureTables } from '../../lambda/adapters/embedded-dynamodb';
import {
  DynamoSweepStateStore,
  type SweepState,
  sweepStateTableDefinition,
} from '../../lambda/adapters/sweep-state';
import type { Decision } from '../../lambda/domain/types';
import { createSweepHandler, type SweepRuntime } from '../../lambda/handlers/sweep-handler';
import { type ConfigInput, parseConfig, policyVersion } from '../../lambda/shared/config';
import { createTestTables, TABLES } from './dynamo';
import { FakeIamAccount } from './fake-iam-account';

/**
 * The sweep handler's test world (test/handlers/sweep*.test.ts): fresh tables on dynalite, a fake IAM account
 * installed on the IAM mock, a controllable clock and numbered sweep ids.
 */

export const SWEEP_ACCOUNT = '111122223333';
export const SWEEP_TOPIC = `arn:aws:sns:us-east-1:${SWEEP_ACCOUNT}:keyguard-owner-notices`;

/** A Lambda context for the sweep function with `remaining` ms left. */
export function sweepContext(remaining: () => number, awsRequestId: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'sweep',
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:${SWEEP_ACCOUNT}:function:sweep`,
    memoryLimitInMB: '1024',
    awsRequestId,
    logGroupName: '/aws/lambda/sweep',
    logStreamName: '2026/11/20/[$LATEST]abcdef',
    getRemainingTimeInMillis: remaining,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export interface SweepWorld {
  rt: SweepRuntime;
  cfg: ReturnType<typeof parseConfig>;
  fake: FakeIamAccount;
  clock: { now: number };
  audit: DynamoAuditLog;
  state: () => Promise<SweepState | null>;
  run: (
    event?: unknown,
    remaining?: () => number,
    requestId?: string,
  ) => ReturnType<ReturnType<typeof createSweepHandler>>;
  decisions: (keyId: string) => Promise<Decision[]>;
  /** This world's table names. */
  tables: typeof TABLES;
  /** This world's sweep-state table. */
  sweepStateTable: string;
}

export interface SweepWorldOptions {
  db: EmbeddedDynamo;
  // biome-ignore lint/suspicious/noExplicitAny: aws-sdk-client-mock's stub of IAMClient, as mockClient returns it
  iam: AwsStub<any, any, any>;
  /** Names the tables `<table>-<prefix>-<n>` and `test-<prefix>-state-<n>`, and the requests `req-<n>-<i>`. */
  prefix: string;
  /** The world's number (unique per prefix in a test file). */
  n: number;
  /** The clock's start. */
  t0: number;
  config?: ConfigInput;
  over?: Partial<SweepRuntime>;
}

/** Fresh tables (new names), a fake account installed on the IAM mock, and a controllable clock. */
export async function sweepWorld(o: SweepWorldOptions): Promise<SweepWorld> {
  const { db, prefix, n } = o;
  const names = Object.fromEntries(
    Object.entries(TABLES).map(([k, v]) => [k, `${v}-${prefix}-${n}`]),
  ) as typeof TABLES;
  await createTestTables(db, names);
  const sweepStateTable = `test-${prefix}-state-${n}`;
  await ensureTables(db.client, [sweepStateTableDefinition(sweepStateTable)]);
  const cfg = parseConfig({ fallbackOwner: 'security@example.com', ...o.config });
  const clock = { now: o.t0 };
  const fake = new FakeIamAccount(SWEEP_ACCOUNT);
  fake.install(o.iam);
  let sweepNo = 0;
  const rt: SweepRuntime = {
    config: cfg,
    policyVersion: policyVersion(cfg),
    decisionsTable: names.decisionsTable,
    keysTable: names.keysTable,
    sweepStateTable,
    topicArn: SWEEP_TOPIC,
    governedAccountId: SWEEP_ACCOUNT,
    iam: new IAMClient({ region: 'us-east-1' }),
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-sweep' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-sweep' }),
    now: () => new Date(clock.now),
    newSweepId: () => {
      sweepNo += 1;
      return `sweep-${sweepNo}`;
    },
    snapshot: { sleep: async () => undefined },
    ...o.over,
  };
  const handler = createSweepHandler(rt);
  const audit = new DynamoAuditLog(db.doc, names);
  const store = new DynamoSweepStateStore(db.doc, sweepStateTable);
  let requests = 0;
  return {
    rt,
    cfg,
    fake,
    clock,
    audit,
    state: () => store.get(SWEEP_ACCOUNT),
    run: (event = {}, remaining = () => 14 * 60_000, requestId) => {
      requests += 1;
      return handler(event, sweepContext(remaining, requestId ?? `req-${n}-${requests}`));
    },
    decisions: (keyId) => audit.decisionsForKey(SWEEP_ACCOUNT, keyId),
    tables: names,
    sweepStateTable,
  };
}
