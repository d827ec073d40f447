import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import * as z from 'zod';
import { decisionEventEntry } from '../../lambda/domain/decision-events';
import type { Decision } from '../../lambda/domain/types';
import { fingerprint, redactedForm } from '../../lambda/shared/redact';
import {
  CHAT_EVENT_PATTERN,
  CHAT_RULE_NAME,
  CHATBOT_ENDPOINT,
  ChatNotices,
} from '../../lib/constructs/chat-notices';
import { GovernanceBus } from '../../lib/constructs/governance-bus';
import { OwnerAlerts } from '../../lib/constructs/owner-alerts';
import { matchesEventPattern } from '../support/event-pattern';
import { applyInputTransformer, type InputTransformer } from '../support/input-transformer';
import { fakeLongTermKey, leakedFragments } from '../support/secrets';
import { build, NO_BUNDLING, resourcesOf, type Statement, writeConfig } from './helpers';

/** ChatNotices (issue 16 item 4) with one Slack and one Teams channel, synthesized once (no bundling). */
const ACCOUNT = '111122223333';
const app = new App({ context: NO_BUNDLING });
const stack = new Stack(app, 'Chat', { env: { account: ACCOUNT, region: 'us-east-1' } });
const bus = new GovernanceBus(stack, 'GovernanceBus', { usage: false });
const alerts = new OwnerAlerts(stack, 'OwnerAlerts', { subscriptions: [{ email: 'sec@example.com' }] });
const SLACK = { workspaceId: 'T0123ABCD', channelId: 'C0123ABCDEF' };
const TEAMS = {
  teamId: '5d3f9a6e-1c2b-4d7e-8f90-a1b2c3d4e5f6',
  channelId: '19%3Ab6ef35dc342d56ba5654e6fc6d25a071%40thread.tacv2',
  tenantId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
};
const chat = new ChatNotices(stack, 'ChatNotices', {
  bus: bus.bus,
  alarmTopic: alerts.topic,
  slack: [SLACK],
  teams: [TEAMS],
});
const template = Template.fromStack(stack);
const ref = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);
const KEY = fakeLongTermKey('chat-notice');

function decision(over: Partial<Decision> = {}): Decision {
  return {
    decisionId: '2026-12-07T10:00:00.000Z/leak/l-1',
    decidedAt: '2026-12-07T10:00:00.000Z',
    keyId: 'ACCAEXAMPLEKEYCHAT001',
    userName: 'svc-batch+ci@team.example',
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Inactive',
    trigger: { kind: 'leak' },
    createdAt: '2026-12-01T00:00:00.000Z',
    expiresAt: null,
    neverExpires: true,
    owner: { value: 'alice@example.com', source: 'tag' },
    violations: [
      { code: 'NEVER_EXPIRES', severity: 'high', detail: 'the key never expires' },
      { code: 'LEAKED', severity: 'critical', detail: `found in /app/prod: ${redactedForm(KEY)}` },
    ],
    action: 'DEACTIVATE',
    applied: true,
    mode: 'enforce',
    deadline: null,
    policyVersion: 'p-000000000000',
    notice: 'action',
    leak: {
      fingerprint: fingerprint(KEY),
      redacted: redactedForm(KEY),
      location: {
        logGroup: '/app/prod',
        logStream: 's-1',
        logEventId: 'e-1',
        timestamp: '2026-12-07T09:59:00.000Z',
      },
    },
    ...over,
  } as Decision;
}

/** The event DecisionEvents puts on the bus for `d` (as EventBridge delivers it to rules and targets). */
function eventOf(d: Decision, account = ACCOUNT): Record<string, unknown> {
  const entry = decisionEventEntry(d);
  return {
    version: '0',
    id: 'ev-1',
    'detail-type': entry.DetailType,
    source: entry.Source,
    account,
    time: entry.Time.toISOString(),
    region: 'us-east-1',
    resources: [],
    detail: JSON.parse(entry.Detail),
  };
}

function ruleProps(): Record<string, unknown> {
  const [rule] = Object.values(resourcesOf(template, 'AWS::Events::Rule')).filter(
    (r) => r.Properties.Name === CHAT_RULE_NAME,
  );
  if (!rule) throw new Error('no chat rule');
  return rule.Properties;
}

/** The chat rule's input transformer applied to `event`, as EventBridge does (test/support/input-transformer.ts). */
function transform(event: Record<string, unknown>): string {
  const target = (ruleProps().Targets as Array<{ InputTransformer: InputTransformer }>)[0];
  if (!target) throw new Error('no target');
  return applyInputTransformer(target.InputTransformer, event);
}

/**
 * The custom notification format of Amazon Q Developer in chat applications ("Custom notifications", Event schema:
 * version, source "custom", content with a description; optional id, textType, title, nextSteps, keywords,
 * metadata).
 */
const CustomNotification = z.strictObject({
  version: z.literal('1.0'),
  source: z.literal('custom'),
  id: z.string().min(1),
  content: z.strictObject({
    textType: z.literal('client-markdown'),
    title: z.string().min(1),
    description: z.string().min(1),
    nextSteps: z.array(z.string()),
    keywords: z.array(z.string()),
  }),
  metadata: z.strictObject({ threadId: z.string(), summary: z.string(), eventType: z.string() }),
});

function topicPolicyStatements(): Statement[] {
  return Object.values(resourcesOf(template, 'AWS::SNS::TopicPolicy'))
    .filter((p) => JSON.stringify(p.Properties.Topics).includes(ref(chat.topic)))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

describe('ChatNotices', () => {
  test('the rule selects exactly the critical notices sent at once, of this account', () => {
    const pattern = ruleProps().EventPattern as Record<string, unknown>;
    expect(pattern).toEqual({ ...CHAT_EVENT_PATTERN, account: [ACCOUNT] });
    // Prepare / Assess: what reaches the chat and what does not.
    expect(matchesEventPattern(pattern, eventOf(decision()))).toBe(true);
    expect(matchesEventPattern(pattern, eventOf(decision({ noticeDigest: 'digest/s-1' })))).toBe(false);
    expect(matchesEventPattern(pattern, eventOf(decision({ notice: null })))).toBe(false);
    const high = decision({
      violations: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'never expires' }],
    });
    expect(matchesEventPattern(pattern, eventOf(high))).toBe(false);
    expect(matchesEventPattern(pattern, eventOf(decision(), '444455556666'))).toBe(false);
  });

  test('the target is the chat topic, with a DLQ, retries and the custom notification as input', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      Name: CHAT_RULE_NAME,
      EventBusName: { Ref: Match.stringLikeRegexp('GovernanceBus') },
      Targets: [
        Match.objectLike({
          Arn: { Ref: ref(chat.topic) },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [ref(chat.deadLetterQueue as never), 'Arn'] } },
          RetryPolicy: { MaximumEventAgeInSeconds: 7200, MaximumRetryAttempts: 4 },
          InputTransformer: Match.objectLike({ InputPathsMap: Match.anyValue() }),
        }),
      ],
    });
  });

  test('a critical decision becomes a valid custom notification naming the key, never key material', () => {
    // Act
    const message = transform(eventOf(decision()));
    // Assess
    const parsed = CustomNotification.parse(JSON.parse(message));
    expect(parsed.id).toBe('2026-12-07T10:00:00.000Z/leak/l-1');
    expect(parsed.content.title).toBe(
      ':rotating_light: Critical: Bedrock API key ACCAEXAMPLEKEYCHAT001 on svc-batch+ci@team.example',
    );
    expect(parsed.content.description).toContain(
      'decided *DEACTIVATE* (applied: true, mode enforce, trigger leak)',
    );
    expect(parsed.content.description).toContain(`in account ${ACCOUNT}`);
    expect(parsed.metadata.threadId).toBe('ACCAEXAMPLEKEYCHAT001');
    expect(leakedFragments(message, [KEY])).toEqual([]);
    // Nothing of the violations' text, the leak evidence or the owner reaches the chat.
    expect(message).not.toContain(fingerprint(KEY));
    expect(message).not.toContain(redactedForm(KEY));
    expect(message).not.toContain('/app/prod');
    expect(message).not.toContain('alice@example.com');
    // A reactivation without approval from a credential event (no leak evidence): valid too.
    const reactivated = decision({
      decisionId: '2026-12-07T10:00:00.000Z/event/0c1f0e4e-7a53-4f7e-9d5b-3b1c2a7e9f10',
      trigger: {
        kind: 'event',
        eventId: '0c1f0e4e-7a53-4f7e-9d5b-3b1c2a7e9f10',
        eventName: 'UpdateServiceSpecificCredential',
      },
      violations: [
        { code: 'REACTIVATED_WITHOUT_APPROVAL', severity: 'critical', detail: 'reactivated by bob' },
      ],
      applied: false,
      mode: 'audit',
    });
    delete reactivated.leak;
    const other = CustomNotification.parse(JSON.parse(transform(eventOf(reactivated))));
    expect(other.content.description).toContain('(applied: false, mode audit, trigger event)');
  });

  test('only the rule publishes to the topic, only Amazon Q Developer subscribes, TLS only; KMS-encrypted', () => {
    const statements = topicPolicyStatements();
    const ruleArn = Match.objectLike({
      'Fn::Join': [
        '',
        Match.arrayWith([`:events:us-east-1:${ACCOUNT}:rule/bedrock-key-guard-governance/${CHAT_RULE_NAME}`]),
      ],
    });
    expect(statements).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Sid: 'ChatRulePublishes',
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: 'sns:Publish',
        }),
        expect.objectContaining({
          Sid: 'OnlyChatSubscriptions',
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: 'sns:Subscribe',
          Condition: { StringNotEquals: { 'sns:Endpoint': CHATBOT_ENDPOINT } },
        }),
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]),
    );
    // No other Allow: nobody else may publish or subscribe through the topic policy.
    expect(statements.filter((s) => s.Effect === 'Allow').map((s) => s.Sid)).toEqual(['ChatRulePublishes']);
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'ChatRulePublishes',
            Condition: {
              StringEquals: { 'aws:SourceAccount': ACCOUNT },
              ArnEquals: { 'aws:SourceArn': ruleArn },
            },
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::SNS::Topic', {
      DisplayName: 'Bedrock Key Guard critical notices (chat)',
      KmsMasterKeyId: Match.objectLike({
        'Fn::GetAtt': Match.arrayWith([Match.stringLikeRegexp('ChatNoticesKey')]),
      }),
    });
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'ChatRuleEncrypts',
            Principal: { Service: 'events.amazonaws.com' },
            Action: ['kms:GenerateDataKey*', 'kms:Decrypt'],
            Condition: {
              StringEquals: { 'aws:SourceAccount': ACCOUNT },
              ArnEquals: { 'aws:SourceArn': ruleArn },
            },
          }),
        ]),
      },
    });
  });

  test('the channel role has no permissions; the guardrail denies everything; user roles are required', () => {
    const roleId = ref(chat.role);
    const role = resourcesOf(template, 'AWS::IAM::Role')[roleId];
    expect(role?.Properties.AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { Service: 'chatbot.amazonaws.com' }, Action: 'sts:AssumeRole' },
      ],
    });
    expect(role?.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role?.Properties.Policies).toBeUndefined();
    const attached = [
      ...Object.values(resourcesOf(template, 'AWS::IAM::Policy')),
      ...Object.values(resourcesOf(template, 'AWS::IAM::ManagedPolicy')),
    ].filter((p) => JSON.stringify(p.Properties.Roles ?? []).includes(roleId));
    expect(attached).toEqual([]);
    template.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Sid: 'DenyEverything', Effect: 'Deny', Action: '*', Resource: '*' }],
      },
    });
    const guardrail = { Ref: ref(chat.guardrail) };
    template.hasResourceProperties('AWS::Chatbot::SlackChannelConfiguration', {
      ConfigurationName: 'Chat-slack-0',
      SlackWorkspaceId: SLACK.workspaceId,
      SlackChannelId: SLACK.channelId,
      IamRoleArn: { 'Fn::GetAtt': [roleId, 'Arn'] },
      SnsTopicArns: [{ Ref: ref(chat.topic) }],
      GuardrailPolicies: [guardrail],
      UserRoleRequired: true,
      LoggingLevel: 'NONE',
    });
    template.hasResourceProperties('AWS::Chatbot::MicrosoftTeamsChannelConfiguration', {
      ConfigurationName: 'Chat-teams-0',
      TeamId: TEAMS.teamId,
      TeamsChannelId: TEAMS.channelId,
      TeamsTenantId: TEAMS.tenantId,
      IamRoleArn: { 'Fn::GetAtt': [roleId, 'Arn'] },
      SnsTopicArns: [{ Ref: ref(chat.topic) }],
      GuardrailPolicies: [guardrail],
      UserRoleRequired: true,
      LoggingLevel: 'NONE',
    });
  });

  test('undelivered and failed chat deliveries alarm on the owner-notice topic, which lets those alarms publish', () => {
    for (const name of ['Chat-chat-notices-undelivered', 'Chat-chat-notices-delivery-failed'])
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: name,
        AlarmActions: [{ Ref: ref(alerts.topic) }],
      });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'Chat-chat-notices-delivery-failed',
      MetricName: 'NumberOfNotificationsFailed',
      Namespace: 'AWS/SNS',
      Dimensions: [{ Name: 'TopicName', Value: { 'Fn::GetAtt': [ref(chat.topic), 'TopicName'] } }],
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: ref(alerts.topic) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'ChatNoticeAlarmsPublish',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
          }),
        ]),
      },
    });
  });

  test('no channel: refused', () => {
    const s = new Stack(new App({ context: NO_BUNDLING }), 'Empty');
    expect(
      () =>
        new ChatNotices(s, 'Chat', {
          bus: new GovernanceBus(s, 'Bus', { usage: false }).bus,
          alarmTopic: new OwnerAlerts(s, 'A').topic,
        }),
    ).toThrow('ChatNotices: give at least one Slack or Microsoft Teams channel (notifications.chat)');
  });

  test('the stack deploys it only with notifications.chat, with the topic as an output', () => {
    const withChat = build({
      context: {
        config: writeConfig({
          notifications: {
            subscriptions: [{ email: 'sec@example.com' }],
            chat: { slack: [SLACK], teams: [TEAMS] },
          },
        }),
      },
    });
    expect(withChat.stack.chatNotices).toBeDefined();
    withChat.template.resourceCountIs('AWS::Chatbot::SlackChannelConfiguration', 1);
    withChat.template.resourceCountIs('AWS::Chatbot::MicrosoftTeamsChannelConfiguration', 1);
    withChat.template.hasOutput('ChatNoticesTopicArn', {
      Value: {
        Ref: withChat.stack.getLogicalId(withChat.stack.chatNotices?.topic.node.defaultChild as never),
      },
    });
    const without = build();
    expect(without.stack.chatNotices).toBeUndefined();
    without.template.resourceCountIs('AWS::Chatbot::SlackChannelConfiguration', 0);
    expect(Object.keys(without.template.findOutputs('ChatNoticesTopicArn'))).toEqual([]);
  });

  test('cdk-nag: no violations', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations).toEqual([]);
  });
});
