import { Duration, Stack } from 'aws-cdk-lib';
import * as chatbot from 'aws-cdk-lib/aws-chatbot';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DECISION_EVENT_DETAIL_TYPE, DECISION_EVENT_SOURCE } from '../../lambda/domain/decision-events';
import { FailureQueue } from './failure-queue';
import { GOVERNANCE_BUS_NAME } from './governance-bus';
import { allowAlarmsToPublish } from './owner-alerts';
import { allowEventBridgeDeadLetterDelivery } from './usage-forwarding';

/** A Slack channel in a workspace authorised once in the Amazon Q Developer (AWS Chatbot) console. */
export interface SlackChatChannel {
  /** The workspace (team) id the console shows after the authorisation, e.g. `T0123ABCD`. */
  readonly workspaceId: string;
  /** The channel id (the last part of the channel's link), e.g. `C0123ABCDEF`. */
  readonly channelId: string;
}

/** A Microsoft Teams channel of a team authorised once in the Amazon Q Developer (AWS Chatbot) console. */
export interface TeamsChatChannel {
  /** The team id (a UUID). */
  readonly teamId: string;
  /** The channel id as the channel's link gives it, URL-encoded (`19%3A…%40thread.tacv2`). */
  readonly channelId: string;
  /** The Microsoft Entra tenant id (a UUID). */
  readonly tenantId: string;
}

export interface ChatNoticesProps {
  /** The governance bus, where DecisionEvents puts every decision. */
  readonly bus: events.IEventBus;
  /** The owner-notice topic: the alarms of this delivery path publish to it. */
  readonly alarmTopic: sns.ITopic;
  /** Slack channels. @default - none */
  readonly slack?: readonly SlackChatChannel[];
  /** Microsoft Teams channels. @default - none */
  readonly teams?: readonly TeamsChatChannel[];
}

/** The chat rule's name on the governance bus: fixed, so the topic and key policies can name its ARN. */
export const CHAT_RULE_NAME = 'bedrock-key-guard-chat-notices';
/** The endpoint of every subscription Amazon Q Developer in chat applications makes to a topic. */
export const CHATBOT_ENDPOINT = 'https://global.sns-api.chatbot.amazonaws.com';

/**
 * Which decision events become chat messages: the decisions whose owner notice is sent at once (`notice` set, not
 * held for a digest: `noticeDigest` absent, as pipeline.ts publishes them) with a critical violation. These are
 * exactly the critical owner notices (a notice's severity is its decision's worst violation).
 */
export const CHAT_EVENT_PATTERN = {
  source: [DECISION_EVENT_SOURCE],
  'detail-type': [DECISION_EVENT_DETAIL_TYPE],
  detail: {
    notice: [{ exists: true }],
    noticeDigest: [{ exists: false }],
    violations: { severity: ['critical'] },
  },
};

/**
 * The message put on the chat topic, in the custom notification format Amazon Q Developer in chat applications
 * renders ("Custom notifications", Event schema: `version`, `source: "custom"`, `content.description` required).
 * Built from the decision event by EventBridge's input transformer. Only identifiers and enumerations of the
 * decision: key id (an IAM credential id, not key material), IAM user name (IAM allows only `\w+=,.@-`), account
 * id, decision id, action, mode, trigger kind. Never the violations' free text, the leak evidence or the owner.
 */
export function chatNotification(): Record<string, unknown> {
  const f = (path: string) => events.EventField.fromPath(path);
  const keyId = f('$.detail.keyId');
  const user = f('$.detail.userName');
  const account = f('$.detail.accountId');
  const decisionId = f('$.detail.decisionId');
  return {
    version: '1.0',
    source: 'custom',
    id: decisionId,
    content: {
      textType: 'client-markdown',
      title: `:rotating_light: Critical: Bedrock API key ${keyId} on ${user}`,
      description:
        `keyguard decided *${f('$.detail.action')}* (applied: ${f('$.detail.applied')}, mode ${f('$.detail.mode')}, ` +
        `trigger ${f('$.detail.trigger.kind')}) for the Bedrock API key \`${keyId}\` of IAM user \`${user}\` in ` +
        `account ${account}: it has a critical violation (a leak, or a reactivation without approval). ` +
        `The owner notice has the details.`,
      nextSteps: [
        `Read the decision: \`keyguard audit --json\` (decision ${decisionId})`,
        'Follow docs/operations.md for a leaked or reactivated key',
      ],
      keywords: ['keyguard', 'critical', keyId],
    },
    metadata: {
      threadId: keyId,
      summary: `keyguard: critical decision for Bedrock API key ${keyId}`,
      eventType: 'KeyguardCriticalDecision',
    },
  };
}

/**
 * An SNS rule target like aws-events-targets' SnsTopic, without the grant its bind() makes (topic.grantPublish to
 * events.amazonaws.com: sns:Publish for any rule of any account, and the key for any caller). The caller writes
 * the topic and key policies for this rule only.
 */
class TopicTargetWithoutGrant implements events.IRuleTarget {
  constructor(
    private readonly topic: sns.ITopic,
    private readonly props: targets.TargetBaseProps & { message: events.RuleTargetInput },
  ) {}

  bind(rule: events.IRule): events.RuleTargetConfig {
    if (this.props.deadLetterQueue)
      targets.addToDeadLetterQueueResourcePolicy(rule, this.props.deadLetterQueue);
    return {
      ...targets.bindBaseTargetConfig(this.props),
      arn: this.topic.topicArn,
      input: this.props.message,
      targetResource: this.topic,
    };
  }
}

/**
 * Critical notices in Slack and Microsoft Teams (issue 16 item 4) through Amazon Q Developer in chat applications
 * (formerly AWS Chatbot), optional (`notifications.chat`).
 *
 * Why a topic of its own, fed by a rule on the decision events, and not the owner-notice topic: Amazon Q Developer
 * posts only messages it can render (AWS service events it knows, or the custom notification JSON), and the owner
 * notices are plain text; its subscription is made by the service, so it could not carry a filter policy keeping
 * only the critical ones, and the owner-notice topic's e-mail subscribers need the text. The rule selects the
 * critical notices ({@link CHAT_EVENT_PATTERN}) and its input transformer writes them as custom notifications
 * ({@link chatNotification}), with identifiers only, never key material.
 *
 * Least privilege: the channel role has no policy at all (custom notifications need no AWS read) and every
 * channel's guardrail is a deny-all policy, so no one can run a command from the channel through it (without a
 * guardrail the service applies AdministratorAccess); user roles are required. The topic allows sns:Publish only
 * to this rule (by ARN) and refuses any subscription but Amazon Q Developer's endpoint; its key lets EventBridge
 * encrypt for this rule only.
 *
 * Failures: the rule target has a DLQ (4 retries, 2 hours) with an alarm; SNS deliveries that fail to the chat
 * service raise the NumberOfNotificationsFailed alarm. Both alarms publish to the owner-notice topic.
 */
export class ChatNotices extends Construct {
  public readonly topic: sns.Topic;
  public readonly rule: events.Rule;
  /** The role every channel configuration uses: no policies. */
  public readonly role: iam.Role;
  /** The deny-all guardrail of every channel. */
  public readonly guardrail: iam.ManagedPolicy;
  public readonly deadLetterQueue: sqs.IQueue;
  public readonly slackChannels: chatbot.SlackChannelConfiguration[] = [];
  public readonly teamsChannels: chatbot.CfnMicrosoftTeamsChannelConfiguration[] = [];

  constructor(scope: Construct, id: string, props: ChatNoticesProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const slack = props.slack ?? [];
    const teams = props.teams ?? [];
    if (slack.length + teams.length === 0)
      throw new Error('ChatNotices: give at least one Slack or Microsoft Teams channel (notifications.chat)');

    const key = new kms.Key(this, 'Key', {
      enableKeyRotation: true,
      description: `Encrypts the chat-notice topic ${this.node.path}`,
    });
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'Bedrock Key Guard critical notices (chat)',
      masterKey: key,
      enforceSSL: true,
    });

    // --- Only this rule publishes; only Amazon Q Developer subscribes ------------------------------------------
    const ruleArn = stack.formatArn({
      service: 'events',
      resource: 'rule',
      resourceName: `${GOVERNANCE_BUS_NAME}/${CHAT_RULE_NAME}`,
    });
    const fromTheRule = {
      StringEquals: { 'aws:SourceAccount': stack.account },
      ArnEquals: { 'aws:SourceArn': ruleArn },
    };
    const eventBridge = new iam.ServicePrincipal('events.amazonaws.com');
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ChatRulePublishes',
        principals: [eventBridge],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: fromTheRule,
      }),
    );
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyChatSubscriptions',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['sns:Subscribe'],
        resources: [this.topic.topicArn],
        conditions: { StringNotEquals: { 'sns:Endpoint': CHATBOT_ENDPOINT } },
      }),
    );
    // What a publisher needs on the topic's key (SNS Developer Guide, "compatibility with AWS services").
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ChatRuleEncrypts',
        principals: [eventBridge],
        actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
        resources: ['*'],
        conditions: fromTheRule,
      }),
    );

    // --- The rule: critical notices, as custom notifications ----------------------------------------------------
    const dlq = new FailureQueue(this, 'DeadLetterQueue');
    allowEventBridgeDeadLetterDelivery(dlq.queue);
    this.deadLetterQueue = dlq.queue;
    this.rule = new events.Rule(this, 'Rule', {
      ruleName: CHAT_RULE_NAME,
      description: 'Decisions with a critical owner notice, as custom notifications for the chat channels',
      eventBus: props.bus,
      eventPattern: {
        // This account's decisions only: in organization mode other accounts may put events on the bus.
        account: [stack.account],
        source: CHAT_EVENT_PATTERN.source,
        detailType: CHAT_EVENT_PATTERN['detail-type'],
        detail: CHAT_EVENT_PATTERN.detail,
      },
    });
    this.rule.addTarget(
      new TopicTargetWithoutGrant(this.topic, {
        message: events.RuleTargetInput.fromObject(chatNotification()),
        deadLetterQueue: dlq.queue,
        retryAttempts: 4,
        maxEventAge: Duration.hours(2),
      }),
    );

    // --- Channels: a role with no policy, a deny-all guardrail --------------------------------------------------
    this.role = new iam.Role(this, 'ChannelRole', {
      assumedBy: new iam.ServicePrincipal('chatbot.amazonaws.com'),
      description:
        'Amazon Q Developer channel role of the keyguard chat notices: no permissions (custom notifications need none)',
    });
    this.guardrail = new iam.ManagedPolicy(this, 'Guardrail', {
      description:
        'Guardrail of the keyguard chat channels: denies every action, so no command runs from the channels',
      statements: [
        new iam.PolicyStatement({
          sid: 'DenyEverything',
          effect: iam.Effect.DENY,
          actions: ['*'],
          resources: ['*'],
        }),
      ],
    });
    // Chatbot configuration names: 1-128 of A-Z a-z 0-9 - _ (a stack name is at most 128 of A-Z a-z 0-9 -).
    const configName = (kind: string, i: number) => `${stack.stackName.slice(0, 100)}-${kind}-${i}`;
    slack.forEach((c, i) => {
      this.slackChannels.push(
        new chatbot.SlackChannelConfiguration(this, `Slack${i}`, {
          slackChannelConfigurationName: configName('slack', i),
          slackWorkspaceId: c.workspaceId,
          slackChannelId: c.channelId,
          notificationTopics: [this.topic],
          role: this.role,
          guardrailPolicies: [this.guardrail],
          userRoleRequired: true,
          loggingLevel: chatbot.LoggingLevel.NONE,
        }),
      );
    });
    teams.forEach((c, i) => {
      this.teamsChannels.push(
        new chatbot.CfnMicrosoftTeamsChannelConfiguration(this, `Teams${i}`, {
          configurationName: configName('teams', i),
          teamId: c.teamId,
          teamsChannelId: c.channelId,
          teamsTenantId: c.tenantId,
          iamRoleArn: this.role.roleArn,
          snsTopicArns: [this.topic.topicArn],
          guardrailPolicies: [this.guardrail.managedPolicyArn],
          userRoleRequired: true,
          loggingLevel: 'NONE',
        }),
      );
    });

    // --- Alarms on the owner-notice topic -------------------------------------------------------------------------
    const prefix = `${stack.stackName}-chat-notices`;
    const undelivered = new cloudwatch.Alarm(this, 'UndeliveredAlarm', {
      alarmName: `${prefix}-undelivered`,
      alarmDescription:
        'Critical notices could not be put on the chat topic (EventBridge gave up after 4 retries or 2 hours): they ' +
        'are in the chat notices dead-letter queue. The owner notices were sent as usual.',
      metric: dlq.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const failed = new cloudwatch.Alarm(this, 'DeliveryFailedAlarm', {
      alarmName: `${prefix}-delivery-failed`,
      alarmDescription:
        'SNS could not deliver critical notices to Amazon Q Developer in chat applications (is the workspace still ' +
        'authorised, the channel configuration in place?). The owner notices were sent as usual.',
      metric: this.topic.metricNumberOfNotificationsFailed({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    for (const alarm of [undelivered, failed])
      alarm.addAlarmAction(new cloudwatchActions.SnsAction(props.alarmTopic));
    allowAlarmsToPublish(props.alarmTopic, 'ChatNoticeAlarmsPublish', `${prefix}-*`);
  }
}
