import assert from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { BatchImportFindingsCommand, SecurityHubClient } from '@aws-sdk/client-securityhub';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { marshall } from '@aws-sdk/util-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import {
  type EmbeddedDynamo,
  ensureTables,
  startEmbeddedDynamo,
} from '../../lambda/adapters/embedded-dynamodb';
import { DynamoFindingsState, findingsStateTableDefinition } from '../../lambda/adapters/findings-state';
import { sweepStateTableDefinition } from '../../lambda/adapters/sweep-state';
import { runAudit } from '../../lambda/cli/audit';
import { REPLAY_TABLES, runReplay } from '../../lambda/cli/replay';
import { createCredentialEventHandler } from '../../lambda/handlers/credential-event-handler';
import { createDecisionEventsHandler } from '../../lambda/handlers/decision-events-handler';
import { createSecurityHubFindingsHandler } from '../../lambda/handlers/security-hub-findings-handler';
import { createSweepHandler } from '../../lambda/handlers/sweep-handler';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { containsKeyMaterial, fingerprint, redactedForm, redactSecrets } from '../../lambda/shared/redact';
import { CHAT_RULE_NAME, ChatNotices } from '../../lib/constructs/chat-notices';
import { GovernanceBus } from '../../lib/constructs/governance-bus';
import { OwnerAlerts } from '../../lib/constructs/owner-alerts';
import { NO_BUNDLING } from '../lib/helpers';
import { captureOutput } from '../support/capture';
import { createTestTables, scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import {
  cloudTrailRecord,
  createCredentialRecord,
  eventBridgeEvent,
  lambdaContext,
  tagUserRecord,
} from '../support/events';
import { FakeIamAccount } from '../support/fake-iam-account';
import { answerPlainUser } from '../support/iam-facts';
import { applyInputTransformer, type InputTransformer } from '../support/input-transformer';
import { escapeRichLongTermKey, KEY_ENCODINGS } from '../support/key-encodings';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';

/**
 * Events can carry key material where nothing guarantees CloudTrail redacted it (the Create response's
 * serviceCredentialSecret/servicePassword), and people paste keys into tag values and error messages.
 * Whatever goes in, no log line, SNS message, audit item or result may repeat it.
 */

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const USER = 'BedrockAPIKey-x7qa';
const KEY = 'ACCAEXAMPLEKEYLEAKS01';
const createdSecret = fakeLongTermKey('created');
const password = fakeLongTermKey('password');
const ownerTagSecret = fakeLongTermKey('owner-tag');
const purposeTagSecret = fakeShortTermKey('purpose-tag');
const errorSecret = fakeShortTermKey('error-message');
const SECRETS = [createdSecret, password, ownerTagSecret, purposeTagSecret, errorSecret];

let db: EmbeddedDynamo;
beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => db.close());

describe('no key material leaves the function or the CLI', () => {
  it('keeps secrets from events and tags out of logs, notices, audit items and results', async () => {
    // Prepare
    // A tiny model of IAM: the key is Active until it is deactivated.
    let status: 'Active' | 'Inactive' = 'Active';
    iam.on(ListServiceSpecificCredentialsCommand).callsFake(() => ({
      ServiceSpecificCredentials: [
        {
          UserName: USER,
          Status: status,
          CreateDate: new Date('2026-11-20T09:31:02Z'),
          ServiceSpecificCredentialId: KEY,
          ServiceName: 'bedrock.amazonaws.com',
          ServiceCredentialAlias: `${USER}-at-111122223333`,
        },
      ],
    }));
    iam.on(ListUserTagsCommand).resolves({
      Tags: [
        { Key: 'owner', Value: ownerTagSecret },
        { Key: 'purpose', Value: purposeTagSecret },
      ],
    });
    iam.on(UpdateServiceSpecificCredentialCommand).callsFake(() => {
      status = 'Inactive';
      return {};
    });
    answerPlainUser(iam);
    sns.on(PublishCommand).resolves({ MessageId: 'm' });
    const config = parseConfig({ mode: 'enforce' });
    const handler = createCredentialEventHandler({
      config,
      policyVersion: policyVersion(config),
      ...TABLES,
      topicArn: 'arn:aws:sns:us-east-1:111122223333:notices',
      governedAccountId: '111122223333',
      iamFor: () => new IAMClient({ region: 'us-east-1' }),
      dynamo: db.client,
      sns: new SNSClient({ region: 'us-east-1' }),
      logger: new Logger({ serviceName: 'keyguard-credential-event', logLevel: 'DEBUG' }),
      metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-credential-event' }),
    });
    const create = createCredentialRecord({ userName: USER, keyId: KEY, secret: createdSecret });
    const cred = (create.responseElements as { serviceSpecificCredential: Record<string, unknown> })
      .serviceSpecificCredential;
    cred.servicePassword = password;
    const failed = {
      ...cloudTrailRecord({
        eventName: 'TagUser',
        errorCode: 'InvalidInput',
        requestParameters: { userName: USER, tags: [{ key: 'note', value: errorSecret }] },
      }),
      errorMessage: `Invalid tag value ${errorSecret}`,
    };
    const events = [
      eventBridgeEvent(create),
      eventBridgeEvent(tagUserRecord(USER, { owner: ownerTagSecret, purpose: purposeTagSecret })),
      eventBridgeEvent(failed),
      { malformed: true, secret: createdSecret },
    ];
    const out = captureOutput();

    // Act
    const results: unknown[] = [];
    try {
      for (const e of events) {
        results.push(await handler(e, lambdaContext()).catch((err: Error) => ({ error: err.message })));
      }
    } finally {
      out.restore();
    }

    // Assess: the pipeline really ran (decisions, a deactivation, notices), and nothing leaked anywhere.
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(sns.commandCalls(PublishCommand).length).toBeGreaterThanOrEqual(1);
    const published = JSON.stringify(sns.commandCalls(PublishCommand).map((c) => c.args[0].input));
    const items = JSON.stringify([
      ...(await scanAll(db, TABLES.decisionsTable)),
      ...(await scanAll(db, TABLES.keysTable)),
      ...(await scanAll(db, TABLES.idempotencyTable)),
    ]);
    const logs = out.text();
    expect(items).toContain(KEY);
    expect(logs).toContain('decision recorded');

    expect(leakedFragments(logs, SECRETS)).toEqual([]);
    expect(leakedFragments(published, SECRETS)).toEqual([]);
    expect(leakedFragments(items, SECRETS)).toEqual([]);
    expect(leakedFragments(JSON.stringify(results), SECRETS)).toEqual([]);
    // The owner that was a pasted key is shown redacted, with a fingerprint to correlate it.
    expect(published).toContain(redactSecrets(ownerTagSecret));
  });

  it('keeps the same secrets out of keyguard replay output (table and JSON), its store and audit --format ocsf', async () => {
    // Prepare: the same kinds of events, as a CloudTrail log file.
    const dir = mkdtempSync(join(tmpdir(), 'keyguard-leak-'));
    const store = join(dir, 'store');
    const create = createCredentialRecord({
      userName: USER,
      keyId: KEY,
      secret: createdSecret,
      eventTime: '2026-11-20T09:31:02Z',
    });
    const cred = (create.responseElements as { serviceSpecificCredential: Record<string, unknown> })
      .serviceSpecificCredential;
    cred.servicePassword = password;
    const tag = {
      ...tagUserRecord(USER, { owner: ownerTagSecret, purpose: purposeTagSecret }),
      eventTime: '2026-11-20T10:00:00Z',
    };
    const failed = {
      ...cloudTrailRecord({
        eventName: 'TagUser',
        errorCode: 'InvalidInput',
        requestParameters: { userName: USER },
      }),
      errorMessage: `Invalid tag value ${errorSecret}`,
    };
    writeFileSync(join(dir, 'trail.json'), JSON.stringify({ Records: [create, tag, failed] }));
    // A file that fails to parse right where a secret stands: the error must not quote it.
    writeFileSync(
      join(dir, 'broken.json'),
      `{"Records":[{"eventName":"x","secret":"${createdSecret}" oops]}`,
    );
    let out = '';
    let err = '';
    const io = {
      cwd: dir,
      stdout: { write: (t: string) => (out += t) },
      stderr: { write: (t: string) => (err += t) },
    };

    try {
      // Act: table output, then JSON output (a second run on the same store), then the store read back as OCSF.
      const tableCode = await runReplay(['.'], { store }, io);
      const jsonCode = await runReplay(['.'], { store, json: true }, io);
      const replayOut = out;
      out = '';
      const ocsfCode = await runAudit({ store, format: 'ocsf' }, io, {
        doc: () => assert.fail('no AWS'),
        env: {},
      });
      const ocsf = out;
      out = replayOut + ocsf;
      const db = await startEmbeddedDynamo({ path: store });
      let items = '';
      try {
        items = JSON.stringify([
          ...(await scanAll(db, REPLAY_TABLES.decisionsTable)),
          ...(await scanAll(db, REPLAY_TABLES.keysTable)),
        ]);
      } finally {
        await db.close();
      }

      // Assess: replay decided on the key (so the secrets went through it), reported the broken file, leaked nothing.
      expect([tableCode, jsonCode, ocsfCode]).toEqual([2, 2, 0]);
      expect(ocsf).toContain('"class_uid":2004');
      expect(ocsf).toContain(redactSecrets(ownerTagSecret));
      expect(out).toContain(KEY);
      expect(items).toContain(KEY);
      expect(err).toContain('broken.json');
      expect(out).toContain(redactSecrets(ownerTagSecret));
      expect(leakedFragments(out, SECRETS)).toEqual([]);
      expect(leakedFragments(err, SECRETS)).toEqual([]);
      expect(leakedFragments(items, SECRETS)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('redacts every key shape to prefix, last 4 characters and a fingerprint', () => {
    const text = `owner=${ownerTagSecret} purpose=${purposeTagSecret}`;

    const redacted = redactSecrets(text);

    expect(containsKeyMaterial(text)).toBe(true);
    expect(containsKeyMaterial(redacted)).toBe(false);
    expect(redacted).toMatch(
      /^owner=ABSK….{4} \[sha256:[0-9a-f]{16}\] purpose=bedrock-api-key-….{4} \[sha256:[0-9a-f]{16}\]$/,
    );
    expect(redactSecrets(ownerTagSecret)).toBe(redactSecrets(ownerTagSecret));
    expect(redactSecrets(ownerTagSecret)).not.toBe(redactSecrets(fakeLongTermKey('another')));
  });
});

/**
 * Issue 10, item 3: a key in a tag value is redacted however it is written (every context `keyguard scan` reads),
 * in the decision, the audit store, logs, notices and CLI output; the decision shows the fingerprint scan reports.
 */
describe('no key material from encoded keys in tag values', () => {
  const longKey = escapeRichLongTermKey('owner-tag-encoded');
  const shortKey = fakeShortTermKey('owner-tag-encoded');
  const CASES: Array<[string, string, string]> = [
    ...KEY_ENCODINGS.map(([name, write]): [string, string, string] => [
      `long-term key, ${name}`,
      longKey,
      write(longKey),
    ]),
    ['short-term key, plain', shortKey, shortKey],
    ['short-term key, URL-encoded', shortKey, encodeURIComponent(shortKey)],
  ];

  it.each(CASES)(
    'redacts an owner tag holding a %s in the decision and everything else',
    async (_n, key, written) => {
      // Prepare
      const keyId = `ACCAENC${fingerprint(written).slice(7, 21).toUpperCase()}`;
      const user = `enc-${keyId.slice(-6).toLowerCase()}`;
      iam.on(ListServiceSpecificCredentialsCommand).resolves({
        ServiceSpecificCredentials: [
          {
            UserName: user,
            Status: 'Active',
            CreateDate: new Date('2026-11-20T09:31:02Z'),
            ServiceSpecificCredentialId: keyId,
            ServiceName: 'bedrock.amazonaws.com',
            ServiceCredentialAlias: `${user}-at-111122223333`,
          },
        ],
      });
      iam.on(ListUserTagsCommand).resolves({ Tags: [{ Key: 'owner', Value: written }] });
      answerPlainUser(iam);
      sns.on(PublishCommand).resolves({ MessageId: 'm' });
      const config = parseConfig({ mode: 'audit' });
      const handler = createCredentialEventHandler({
        config,
        policyVersion: policyVersion(config),
        ...TABLES,
        topicArn: 'arn:aws:sns:us-east-1:111122223333:notices',
        governedAccountId: '111122223333',
        iamFor: () => new IAMClient({ region: 'us-east-1' }),
        dynamo: db.client,
        sns: new SNSClient({ region: 'us-east-1' }),
        logger: new Logger({ serviceName: 'keyguard-credential-event', logLevel: 'DEBUG' }),
        metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-credential-event' }),
      });
      const out = captureOutput();

      // Act
      let result: unknown;
      try {
        result = await handler(eventBridgeEvent(tagUserRecord(user, { owner: written })), lambdaContext());
      } finally {
        out.restore();
      }

      // Assess: the decision names the owner by redacted form and scan's fingerprint; the key is nowhere.
      const decisions = (await scanAll(db, TABLES.decisionsTable)).filter((d) => d.keyId === keyId);
      expect(decisions.length).toBeGreaterThanOrEqual(1);
      for (const d of decisions) {
        expect((d.owner as { value: string }).value).toBe(`${redactedForm(key)} [${fingerprint(key)}]`);
      }
      const items = JSON.stringify([
        ...(await scanAll(db, TABLES.decisionsTable)),
        ...(await scanAll(db, TABLES.keysTable)),
        ...(await scanAll(db, TABLES.idempotencyTable)),
      ]);
      const published = JSON.stringify(sns.commandCalls(PublishCommand).map((c) => c.args[0].input));
      for (const text of [items, published, out.text(), JSON.stringify(result)]) {
        expect(leakedFragments(text, [key, written])).toEqual([]);
      }
    },
  );

  it('keeps them out of keyguard replay output (table and JSON) and its store', async () => {
    // Prepare: one user per case, each created with a key and tagged with the key written its way.
    const dir = mkdtempSync(join(tmpdir(), 'keyguard-leak-enc-'));
    const store = join(dir, 'store');
    const records = CASES.flatMap(([, , written], i) => {
      const user = `enc-user-${i}`;
      return [
        createCredentialRecord({
          userName: user,
          keyId: `ACCAENCODED0000000${String(i).padStart(3, '0')}`,
          eventTime: '2026-11-20T09:31:02Z',
        }),
        { ...tagUserRecord(user, { owner: written }), eventTime: '2026-11-20T10:00:00Z' },
      ];
    });
    writeFileSync(join(dir, 'trail.json'), JSON.stringify({ Records: records }));
    let out = '';
    let err = '';
    const io = {
      cwd: dir,
      stdout: { write: (t: string) => (out += t) },
      stderr: { write: (t: string) => (err += t) },
    };

    try {
      // Act
      const codes = [
        await runReplay(['.'], { store }, io),
        await runReplay(['.'], { store, json: true }, io),
      ];
      const db = await startEmbeddedDynamo({ path: store });
      let items = '';
      try {
        items = JSON.stringify(await scanAll(db, REPLAY_TABLES.decisionsTable));
      } finally {
        await db.close();
      }

      // Assess: every case was decided on (its fingerprint shows), and no key, however written, is anywhere.
      expect(codes).toEqual([0, 0]);
      for (const [, key] of CASES) expect(out).toContain(fingerprint(key));
      for (const [, key, written] of CASES) {
        for (const text of [out, err, items]) expect(leakedFragments(text, [key, written])).toEqual([]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('no key material in owner digests and the first-deployment summary', () => {
  it('keeps keys pasted into tags out of the summary, the digests, the keys table and the logs', async () => {
    // Prepare: owners, purposes and review cadences that are pasted keys, over two owners' keys
    iam.reset();
    sns.reset();
    sns.on(PublishCommand).resolves({ MessageId: 'm' });
    const names = Object.fromEntries(
      Object.entries(TABLES).map(([k, v]) => [k, `${v}-digest`]),
    ) as typeof TABLES;
    await createTestTables(db, names);
    await ensureTables(db.client, [sweepStateTableDefinition('test-digest-secrets-state')]);
    const t0 = Date.parse('2026-11-20T10:00:00Z');
    const fake = new FakeIamAccount('111122223333');
    fake.install(iam);
    fake.user('svc-a', { tags: { owner: ownerTagSecret, purpose: purposeTagSecret } });
    fake.user('svc-b', { tags: { owner: 'team@example.com', 'review-cadence': errorSecret } });
    for (const [i, user] of ['svc-a', 'svc-a', 'svc-b'].entries()) {
      fake.key({
        keyId: `ACCAEXAMPLEKEYDIGEST${i}`,
        userName: user,
        createdAt: new Date(t0).toISOString(),
        expiresAt: new Date(t0 + 30 * 86_400_000).toISOString(),
      });
    }
    const clock = { now: t0 };
    const config = parseConfig({ fallbackOwner: 'security@example.com' });
    let sweeps = 0;
    const handler = createSweepHandler({
      config,
      policyVersion: policyVersion(config),
      decisionsTable: names.decisionsTable,
      keysTable: names.keysTable,
      sweepStateTable: 'test-digest-secrets-state',
      topicArn: 'arn:aws:sns:us-east-1:111122223333:notices',
      governedAccountId: '111122223333',
      iam: new IAMClient({ region: 'us-east-1' }),
      dynamo: db.client,
      sns: new SNSClient({ region: 'us-east-1' }),
      logger: new Logger({ serviceName: 'keyguard-sweep', logLevel: 'DEBUG' }),
      metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-sweep' }),
      now: () => new Date(clock.now),
      newSweepId: () => {
        sweeps += 1;
        return `sweep-${sweeps}`;
      },
      snapshot: { sleep: async () => undefined },
    });
    const out = captureOutput();
    // Act: the first sweep (summary), then the reminders (one digest per owner)
    try {
      for (const hours of [0, 36]) {
        clock.now = t0 + hours * 3_600_000;
        // Time for the whole sweep (the shared context's 55 s is under the sweep's 90 s safety margin).
        await handler({}, { ...lambdaContext(), getRemainingTimeInMillis: () => 600_000 });
      }
    } finally {
      out.restore();
    }
    // Assess: a summary and two digests were sent, and none of them, nor anything stored or logged, holds a key
    const messages = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(messages.map((m) => m.Subject?.slice(0, 41))).toEqual([
      '[keyguard] LOW: first sweep of account 11',
      '[keyguard] LOW: 2 Bedrock API keys of you',
      '[keyguard] LOW: 1 Bedrock API key of your',
    ]);
    const published = JSON.stringify(messages);
    const items = JSON.stringify([
      ...(await scanAll(db, names.decisionsTable)),
      ...(await scanAll(db, names.keysTable)),
    ]);
    expect(published).toContain('ACCAEXAMPLEKEYDIGEST0');
    expect(leakedFragments(published, SECRETS)).toEqual([]);
    expect(leakedFragments(items, SECRETS)).toEqual([]);
    expect(leakedFragments(out.text(), SECRETS)).toEqual([]);
    // The owner that was a pasted key is grouped and shown under its redacted form.
    expect(messages[1]?.MessageAttributes?.owner?.StringValue).toBe(redactSecrets(ownerTagSecret));
  });
});

describe('no key material in decision events', () => {
  it('puts every decision recorded above (secrets in events, tags, errors, encoded keys in tags), keyguard and OCSF, without a fragment of a key', async () => {
    // Prepare: the decisions table as the tests above left it, delivered as its stream delivers new items.
    const eventBridge = mockClient(EventBridgeClient);
    eventBridge.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ({
      FailedEntryCount: 0,
      Entries: input.Entries.map((_, i) => ({ EventId: `id-${i}` })),
    }));
    const longKey = escapeRichLongTermKey('owner-tag-encoded');
    const shortKey = fakeShortTermKey('owner-tag-encoded');
    const encoded = [
      longKey,
      shortKey,
      encodeURIComponent(shortKey),
      ...KEY_ENCODINGS.map(([, write]) => write(longKey)),
    ];
    const items = await scanAll(db, TABLES.decisionsTable);
    const decisions = items.filter((i) => !String(i.pk).startsWith('chain#'));
    const handler = createDecisionEventsHandler({
      eventBridge: eventBridge as unknown as EventBridgeClient,
      busArn: 'arn:aws:events:us-east-1:111122223333:event-bus/bedrock-key-guard-governance',
      logger: { info: () => undefined, warn: () => undefined },
      ocsf: true,
    });
    // Act
    const res = await handler({
      Records: items.map((item, i) => ({
        eventID: `ev-${i}`,
        eventName: 'INSERT',
        dynamodb: {
          SequenceNumber: String(i + 1),
          NewImage: marshall(item, { removeUndefinedValues: true }) as never,
        },
      })),
    });
    // Assess: every decision was put, and no entry holds a key or a fragment of one.
    expect(res).toEqual({ batchItemFailures: [] });
    const entries = eventBridge.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    expect(decisions.length).toBeGreaterThanOrEqual(KEY_ENCODINGS.length);
    // Each decision twice: its keyguard event and its OCSF Detection Finding (decisionEvents.ocsf).
    expect(entries).toHaveLength(decisions.length * 2);
    expect(entries.filter((e) => e.DetailType === 'Bedrock API Key Decision (OCSF)')).toHaveLength(
      decisions.length,
    );
    const sent = JSON.stringify(entries);
    expect(sent).toContain(KEY);
    expect(leakedFragments(sent, [...SECRETS, ...encoded])).toEqual([]);
    expect(containsKeyMaterial(sent)).toBe(false);

    // The same events, queued for Security Hub: every finding imported holds no key or fragment of one either.
    const securityHub = mockClient(SecurityHubClient);
    securityHub
      .on(BatchImportFindingsCommand)
      .resolves({ SuccessCount: 1, FailedCount: 0, FailedFindings: [] });
    await ensureTables(db.client, [findingsStateTableDefinition('test-findings-state')]);
    const findings = createSecurityHubFindingsHandler({
      securityHub: securityHub as unknown as SecurityHubClient,
      state: new DynamoFindingsState(db.doc, 'test-findings-state'),
      target: { partition: 'aws', region: 'us-east-1', accountId: '111122223333' },
      logger: { info: () => undefined, warn: () => undefined },
      sleep: async () => undefined,
    });
    // (Its rule matches the keyguard detail-type only: the OCSF events are not queued.)
    const queued = await findings({
      Records: entries
        .filter((e) => e.DetailType === 'Bedrock API Key Decision')
        .map((e, i) => ({
          messageId: `m-${i}`,
          body: JSON.stringify({
            source: e.Source,
            'detail-type': e.DetailType,
            detail: JSON.parse(e.Detail ?? '{}'),
          }),
        })) as never,
    });
    expect(queued).toEqual({ batchItemFailures: [] });
    const sentFindings = securityHub
      .commandCalls(BatchImportFindingsCommand)
      .flatMap((c) => c.args[0].input.Findings ?? []);
    // The keys whose owner tag is a pasted key are open findings: their owner goes to Security Hub redacted.
    expect(sentFindings.length).toBeGreaterThanOrEqual(KEY_ENCODINGS.length);
    const imported = JSON.stringify(sentFindings);
    expect(imported).toContain('[sha256:');
    expect(leakedFragments(imported, [...SECRETS, ...encoded])).toEqual([]);
    expect(containsKeyMaterial(imported)).toBe(false);
    expect(leakedFragments(JSON.stringify(await scanAll(db, 'test-findings-state')), SECRETS)).toEqual([]);

    // The same events through the chat notices' rule (issue 16 item 4), its input transformer applied as EventBridge
    // does: what Amazon Q Developer would post in Slack or Teams holds no key or fragment of one either.
    const chatStack = new Stack(new App({ context: NO_BUNDLING }), 'Chat', {
      env: { account: '111122223333', region: 'us-east-1' },
    });
    new ChatNotices(chatStack, 'ChatNotices', {
      bus: new GovernanceBus(chatStack, 'Bus', { usage: false }).bus,
      alarmTopic: new OwnerAlerts(chatStack, 'Alerts').topic,
      slack: [{ workspaceId: 'T0123ABCD', channelId: 'C0123ABCDEF' }],
    });
    const [chatRule] = Object.values(
      Template.fromStack(chatStack).findResources('AWS::Events::Rule', {
        Properties: { Name: CHAT_RULE_NAME },
      }),
    ) as Array<{ Properties: { Targets: Array<{ InputTransformer: InputTransformer }> } }>;
    const transformer = chatRule?.Properties.Targets[0]?.InputTransformer;
    assert(transformer, 'the chat rule has an input transformer');
    const posted = entries
      .filter((e) => e.DetailType === 'Bedrock API Key Decision')
      .map((e) =>
        applyInputTransformer(transformer, {
          source: e.Source,
          'detail-type': e.DetailType,
          account: '111122223333',
          detail: JSON.parse(e.Detail ?? '{}'),
        }),
      );
    expect(posted).toHaveLength(decisions.length);
    const chatText = JSON.stringify(posted);
    expect(chatText).toContain('Bedrock API key ACCA');
    expect(leakedFragments(chatText, [...SECRETS, ...encoded])).toEqual([]);
    expect(containsKeyMaterial(chatText)).toBe(false);
  });
});
