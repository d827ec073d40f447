import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  DescribeAccountCommand,
  ListAccountsForParentCommand,
  ListChildrenCommand,
  ListParentsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { SendMessageBatchCommand, type SendMessageBatchRequestEntry, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { listGovernedAccounts } from '../../lambda/adapters/organizations';
import { createOrgSweepScheduler, SweepMessagesNotSentError } from '../../lambda/handlers/org-sweep-handler';
import { SweepMessageSchema } from '../../lambda/handlers/sweep-queue-handler';
import { type Capture, captureOutput } from '../support/capture';

const HUB = '100000000000';
const QUEUE = `https://sqs.us-east-1.amazonaws.com/${HUB}/sweep`;
const T0 = new Date('2026-11-20T10:00:00Z');
const sqs = mockClient(SQSClient);
const org = mockClient(OrganizationsClient);
let out: Capture;

/** 27 member accounts under ou-ab12-cd34ef56 (2 suspended, 1 excluded), paginated by 5; the hub under the root. */
const MEMBERS = Array.from({ length: 27 }, (_, i) => String(200000000000 + i));
const SUSPENDED = new Set([MEMBERS[3], MEMBERS[17]]);

beforeEach(() => {
  sqs.reset();
  org.reset();
  out = captureOutput();
  org.on(ListParentsCommand).callsFake(({ ChildId }) => ({
    Parents: [
      ChildId === 'ou-ab12-cd34ef56' || ChildId === HUB ? { Id: 'r-ab12', Type: 'ROOT' } : null,
    ].filter(Boolean),
  }));
  org.on(ListAccountsForParentCommand).callsFake(({ ParentId, NextToken }) => {
    if (ParentId !== 'ou-ab12-cd34ef56') return { Accounts: [] };
    const i = NextToken ? Number(NextToken) : 0;
    return {
      Accounts: MEMBERS.slice(i, i + 5).map((Id) => ({
        Id,
        Name: `acct-${Id}`,
        State: SUSPENDED.has(Id) ? 'SUSPENDED' : 'ACTIVE',
      })),
      NextToken: i + 5 < MEMBERS.length ? String(i + 5) : undefined,
    };
  });
  org.on(ListChildrenCommand).resolves({ Children: [] });
  org.on(DescribeAccountCommand).resolves({ Account: { Id: HUB, Name: 'hub' } });
});
afterEach(() => out.restore());

function scheduler(attempts = 3) {
  const sleeps: number[] = [];
  const handler = createOrgSweepScheduler({
    listAccounts: () =>
      listGovernedAccounts(new OrganizationsClient({ region: 'us-east-1' }), {
        targets: ['ou-ab12-cd34ef56'],
        excludeAccounts: [MEMBERS[5] as string],
        hubAccountId: HUB,
      }),
    sqs: new SQSClient({ region: 'us-east-1' }),
    queueUrl: QUEUE,
    logger: new Logger({ serviceName: 'keyguard-org-sweep' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-org-sweep' }),
    attempts,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    now: () => T0,
  });
  return { handler, sleeps };
}

const batches = () =>
  sqs
    .commandCalls(SendMessageBatchCommand)
    .map((c) => c.args[0].input.Entries as SendMessageBatchRequestEntry[]);

describe('organization sweep scheduler: one message per governed account', () => {
  it('puts 25 governed accounts on the sweep queue in 3 batches (10, 10, 5), one message each', async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const { handler } = scheduler();
    const result = await handler();
    // 27 members - 2 suspended - 1 excluded + the hub = 25
    expect(result).toEqual({ round: T0.toISOString(), accounts: 25, sent: 25, batches: 3 });
    const sent = batches();
    expect(sent.map((b) => b.length)).toEqual([10, 10, 5]);
    expect(sqs).toHaveReceivedCommandWith(SendMessageBatchCommand, { QueueUrl: QUEUE });
    const messages = sent.flat().map((e) => SweepMessageSchema.parse(JSON.parse(e.MessageBody as string)));
    const ids = messages.map((m) => m.accountId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toContain(HUB);
    expect(ids).not.toContain(MEMBERS[3]);
    expect(ids).not.toContain(MEMBERS[5]);
    expect(messages.find((m) => m.accountId === MEMBERS[0])).toEqual({
      accountId: MEMBERS[0],
      name: `acct-${MEMBERS[0]}`,
      ouPath: ['ou-ab12-cd34ef56'],
      round: T0.toISOString(),
    });
    expect(messages.find((m) => m.accountId === HUB)?.ouPath).toEqual([]);
  });

  it('re-sends the entries SQS refused, with backoff, and does not send the others twice', async () => {
    let calls = 0;
    sqs.on(SendMessageBatchCommand).callsFake(({ Entries }: { Entries: SendMessageBatchRequestEntry[] }) => {
      calls += 1;
      // The first call refuses two entries once.
      if (calls === 1) {
        return {
          Successful: [],
          Failed: Entries.slice(0, 2).map((e) => ({ Id: e.Id, Code: 'InternalError', SenderFault: false })),
        };
      }
      return { Successful: [], Failed: [] };
    });
    const { handler, sleeps } = scheduler();
    const result = await handler();
    expect(result.sent).toBe(25);
    const sent = batches();
    expect(sent.map((b) => b.length)).toEqual([10, 2, 10, 5]);
    expect(sent[1]?.map((e) => e.Id)).toEqual(sent[0]?.slice(0, 2).map((e) => e.Id));
    expect(sleeps).toEqual([200]);
  });

  it('sends every other batch, then reports and throws naming the accounts still refused', async () => {
    sqs.on(SendMessageBatchCommand).callsFake(({ Entries }: { Entries: SendMessageBatchRequestEntry[] }) => ({
      Successful: [],
      Failed: Entries.filter((e) => e.Id === MEMBERS[0]).map((e) => ({
        Id: e.Id,
        Code: 'KMS.ThrottlingException',
        SenderFault: false,
      })),
    }));
    const { handler, sleeps } = scheduler(3);
    await expect(handler()).rejects.toThrow(SweepMessagesNotSentError);
    await expect(scheduler(3).handler()).rejects.toThrow(
      `1 governed account(s) could not be put on the sweep queue: ${MEMBERS[0]}`,
    );
    // 3 attempts of the refused entry; the other batches were still sent.
    expect(sleeps).toEqual([200, 400]);
    const lines = out.lines();
    expect(lines.some((l) => l.SweepMessagesNotSent === 1)).toBe(true);
    expect(lines.some((l) => l.message === 'accounts not put on the sweep queue: not swept this round')).toBe(
      true,
    );
  });
});
