import { type CfnElement, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { COLLABORATION_STATE_ACTIONS } from '../../lambda/adapters/collaboration-scan-state';
import { SCAN_REPORT_SOURCE } from '../../lambda/domain/scan-report';
import { FailureQueue } from './failure-queue';
import { grantItemActions } from './governance-access';
import { KeyguardFunction } from './keyguard-function';

/** The function's timeout: a run stops starting channels 2 minutes before it and holds its lease 1 minute past it. */
export const COLLABORATION_SCAN_TIMEOUT = Duration.minutes(10);

export interface SlackScanProps {
  /** EventBridge Scheduler expression of the runs, e.g. `rate(15 minutes)`. */
  readonly schedule: string;
  /** Channel names or ids. @default - every channel the token can read */
  readonly channels?: readonly string[];
  /** The Slack Web API base URL (a private or test deployment). @default - https://slack.com/api */
  readonly apiUrl?: string;
  /** How far back the first run reads a channel it has no mark for. */
  readonly initialLookbackHours: number;
}

export interface JiraScanProps {
  /** EventBridge Scheduler expression of the runs, e.g. `rate(15 minutes)`. */
  readonly schedule: string;
  /** The Jira Cloud site URL (https). */
  readonly siteUrl: string;
  /** Project keys, each with its own high-water mark. */
  readonly projects?: readonly string[];
  /** A JQL query: alone, one high-water mark; with `projects`, it narrows each project's search. */
  readonly jql?: string;
  /** How far back the first run reads a project it has no mark for. */
  readonly initialLookbackHours: number;
}

export interface ConfluenceScanProps {
  /** EventBridge Scheduler expression of the runs, e.g. `rate(15 minutes)`. */
  readonly schedule: string;
  /** The Confluence Cloud site URL (https). */
  readonly siteUrl: string;
  /** Space keys, each with its own high-water mark. */
  readonly spaces: readonly string[];
  /** How far back the first run reads a space it has no mark for. */
  readonly initialLookbackHours: number;
}

export interface CollaborationScanProps {
  /** The governance bus: reports go there with source `keyguard.scan`, as from `keyguard scan --quarantine`. */
  readonly bus: events.IEventBus;
  /** Scan Slack (`leakDetection.slack`). At least one of `slack`, `jira` and `confluence`. */
  readonly slack?: SlackScanProps;
  /** Scan Jira (`leakDetection.jira`). */
  readonly jira?: JiraScanProps;
  /**
   * Scan Confluence (`leakDetection.confluence`). Its settings go in its schedule's input, not in the function's
   * environment (which the largest Slack and Jira settings nearly fill).
   */
  readonly confluence?: ConfluenceScanProps;
}

/**
 * Continuous collaboration scanning (issue 15 §3, off by default): an EventBridge Scheduler schedule runs the
 * `collaboration-scan` function, which reads what is new in Slack since each channel's high-water mark (kept in
 * `stateTable`) with the token an operator put in `slackTokenSecret`, and reports every key found on the governance
 * bus as `keyguard scan --quarantine` does; the leak function decides it from there (LeakQuarantine's rule). With
 * `jira`, a second schedule (input `{"source":"jira"}`) runs the same function over the Jira issues updated since
 * each project's mark, with the e-mail and API token in `jiraSecret`. With `confluence`, a third schedule (input
 * `{"source":"confluence", siteUrl, spaces, initialLookbackHours, secretArn}`) runs it over the pages modified since
 * each space's mark, with the e-mail and API token in `confluenceSecret` (its own secret, even on the Jira site:
 * each secret is read by the runs of its own source; an operator puts the same JSON in both).
 *
 * The stack creates each secret EMPTY (no value: the token never appears in the template, a parameter or the
 * function's environment); until an operator puts the token in (docs/deployment.md), each run logs one error and
 * the TokenNotSet metric and ends.
 *
 * The role: GetSecretValue on its secret(s), Query/PutItem/UpdateItem on the state table, PutEvents on the bus for source
 * `keyguard.scan` only, its own log group, and sending to its failure queue (Lambda's on-failure destination).
 * Failures: the schedule retries delivery, then the failure queue; a run that throws (an AWS call failed) is retried
 * by Lambda, then lands in the same queue (the request is the schedule's input: settings and a secret's ARN at most,
 * no key, no token).
 */
export class CollaborationScan extends Construct {
  public readonly function: NodejsFunction;
  public readonly role: iam.IRole;
  /** High-water marks per channel and the run's lease. */
  public readonly stateTable: dynamodb.Table;
  /** The Slack token's secret, created empty (with `slack`). */
  public readonly slackTokenSecret?: secretsmanager.CfnSecret;
  /** Its ARN (the secret's Ref). */
  public readonly slackTokenSecretArn?: string;
  /** The Jira e-mail and API token's secret ({"email", "apiToken"}), created empty (with `jira`). */
  public readonly jiraSecret?: secretsmanager.CfnSecret;
  /** Its ARN (the secret's Ref). */
  public readonly jiraSecretArn?: string;
  /** The Confluence e-mail and API token's secret ({"email", "apiToken"}), created empty (with `confluence`). */
  public readonly confluenceSecret?: secretsmanager.CfnSecret;
  /** Its ARN (the secret's Ref). */
  public readonly confluenceSecretArn?: string;
  /** Failed schedule deliveries and failed runs. */
  public readonly failureQueue: sqs.IQueue;
  /** The Slack runs' schedule (input `{}`). */
  public readonly schedule?: scheduler.Schedule;
  /** The Jira runs' schedule (input `{"source": "jira"}`). */
  public readonly jiraSchedule?: scheduler.Schedule;
  /** The Confluence runs' schedule (input `{"source": "confluence", …}`). */
  public readonly confluenceSchedule?: scheduler.Schedule;
  /** The role EventBridge Scheduler assumes to invoke the function and write to the failure queue. */
  public readonly schedulerRole: iam.Role;

  constructor(scope: Construct, id: string, props: CollaborationScanProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { slack, jira, confluence } = props;
    if (!slack && !jira && !confluence) throw new Error('CollaborationScan needs slack, jira or confluence');
    if (confluence && confluence.spaces.length === 0)
      throw new Error('CollaborationScan confluence needs spaces');
    if (jira && !jira.projects?.length && !jira.jql?.trim())
      throw new Error('CollaborationScan jira needs projects, jql or both');

    const failures = new FailureQueue(this, 'FailureQueue');
    this.failureQueue = failures.queue;

    this.stateTable = new dynamodb.Table(this, 'StateTable', {
      partitionKey: { name: 'source', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // Only the marks: losing them makes the next run read the initial lookback again (keys found again are
      // recorded once by the leak function), nothing more.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // No SecretString and no GenerateSecretString: CloudFormation creates an empty secret (no version), so no value
    // is ever in the template. An operator puts the token in with `aws secretsmanager put-secret-value`.
    if (slack) {
      this.slackTokenSecret = new secretsmanager.CfnSecret(this, 'SlackTokenSecret', {
        description:
          'Bedrock Key Guard: the Slack token of the scheduled leak scan (created empty; put the token in with ' +
          'aws secretsmanager put-secret-value, see docs/deployment.md)',
      });
      // Deleting the stack schedules the secret's deletion (recoverable during the recovery window).
      this.slackTokenSecret.applyRemovalPolicy(RemovalPolicy.DESTROY);
      this.slackTokenSecretArn = this.slackTokenSecret.ref;
      Validations.of(this.slackTokenSecret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'The secret holds a Slack token that Slack issues and revokes: Secrets Manager cannot rotate it (there is ' +
          'no rotation function for Slack). It is replaced by putting a new value; the function reads it at every run.',
      });
    }
    if (jira) {
      this.jiraSecret = new secretsmanager.CfnSecret(this, 'JiraSecret', {
        description:
          'Bedrock Key Guard: the Atlassian e-mail and API token of the scheduled Jira leak scan, as JSON ' +
          '{"email","apiToken"} (created empty; put it in with aws secretsmanager put-secret-value, see ' +
          'docs/deployment.md)',
      });
      this.jiraSecret.applyRemovalPolicy(RemovalPolicy.DESTROY);
      this.jiraSecretArn = this.jiraSecret.ref;
      Validations.of(this.jiraSecret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'The secret holds an Atlassian API token that Atlassian issues and expires: Secrets Manager cannot rotate ' +
          'it (there is no rotation function for Atlassian). It is replaced by putting a new value; the function ' +
          'reads it at every run.',
      });
    }

    if (confluence) {
      this.confluenceSecret = new secretsmanager.CfnSecret(this, 'ConfluenceSecret', {
        description:
          'Bedrock Key Guard: the Atlassian e-mail and API token of the scheduled Confluence leak scan, as JSON ' +
          '{"email","apiToken"} (created empty; put it in with aws secretsmanager put-secret-value, see ' +
          'docs/deployment.md)',
      });
      this.confluenceSecret.applyRemovalPolicy(RemovalPolicy.DESTROY);
      this.confluenceSecretArn = this.confluenceSecret.ref;
      Validations.of(this.confluenceSecret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'The secret holds an Atlassian API token that Atlassian issues and expires: Secrets Manager cannot rotate ' +
          'it (there is no rotation function for Atlassian). It is replaced by putting a new value; the function ' +
          'reads it at every run.',
      });
    }

    const fn = new KeyguardFunction(this, 'Handler', {
      entry: 'lambda/handlers/collaboration-scan.ts',
      description: `Scans what is new in ${[slack ? 'Slack' : '', jira ? 'Jira' : '', confluence ? 'Confluence' : ''].filter(Boolean).join(', ')} for Bedrock API keys and reports them to the governance bus (scheduled)`,
      timeout: COLLABORATION_SCAN_TIMEOUT,
      environment: {
        ...(slack && this.slackTokenSecretArn
          ? {
              SLACK_TOKEN_SECRET_ARN: this.slackTokenSecretArn,
              SLACK_INITIAL_LOOKBACK_HOURS: String(slack.initialLookbackHours),
              ...(slack.apiUrl ? { SLACK_API_URL: slack.apiUrl } : {}),
              ...(slack.channels && slack.channels.length > 0
                ? { SLACK_CHANNELS: slack.channels.join(',') }
                : {}),
            }
          : {}),
        ...(jira && this.jiraSecretArn
          ? {
              JIRA_SECRET_ARN: this.jiraSecretArn,
              JIRA_SITE_URL: jira.siteUrl.replace(/\/+$/, ''),
              JIRA_INITIAL_LOOKBACK_HOURS: String(jira.initialLookbackHours),
              ...(jira.projects && jira.projects.length > 0
                ? { JIRA_PROJECTS: jira.projects.join(',') }
                : {}),
              ...(jira.jql ? { JIRA_JQL: jira.jql } : {}),
            }
          : {}),
        COLLABORATION_STATE_TABLE_NAME: this.stateTable.tableName,
        GOVERNANCE_BUS_ARN: props.bus.eventBusArn,
        POWERTOOLS_SERVICE_NAME: 'keyguard-collaboration-scan',
        POWERTOOLS_METRICS_NAMESPACE: 'BedrockKeyGuard',
        POWERTOOLS_LOG_LEVEL: 'INFO',
      },
      onFailure: failures.destination(),
      retryAttempts: 2,
      // A run older than this is superseded by the next scheduled one.
      maxEventAge: Duration.hours(1),
    });
    this.function = fn.function;
    this.role = fn.role;

    // --- IAM: its secrets, its state, reports on the bus; nothing else ---------------------------------------------
    if (this.slackTokenSecretArn)
      this.role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReadSlackToken',
          actions: ['secretsmanager:GetSecretValue'],
          resources: [this.slackTokenSecretArn],
        }),
      );
    if (this.jiraSecretArn)
      this.role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReadJiraCredentials',
          actions: ['secretsmanager:GetSecretValue'],
          resources: [this.jiraSecretArn],
        }),
      );
    if (this.confluenceSecretArn)
      this.role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReadConfluenceCredentials',
          actions: ['secretsmanager:GetSecretValue'],
          resources: [this.confluenceSecretArn],
        }),
      );
    grantItemActions(this.role, this.stateTable, 'ScanState', [...COLLABORATION_STATE_ACTIONS]);
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PutScanReports',
        actions: ['events:PutEvents'],
        resources: [props.bus.eventBusArn],
        conditions: { StringEquals: { 'events:source': SCAN_REPORT_SOURCE } },
      }),
    );

    // --- Schedule --------------------------------------------------------------------------------------------------
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: `EventBridge Scheduler invoking ${this.node.path}`,
    });
    failures.encryptionKey.grant(this.schedulerRole, 'kms:GenerateDataKey', 'kms:Decrypt');
    const target = (input: Record<string, unknown>) =>
      new targets.LambdaInvoke(this.function, {
        role: this.schedulerRole,
        input: scheduler.ScheduleTargetInput.fromObject(input),
        deadLetterQueue: this.failureQueue,
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
      });
    if (slack)
      this.schedule = new scheduler.Schedule(this, 'Schedule', {
        description: 'Bedrock Key Guard: scan what is new in Slack for Bedrock API keys',
        schedule: scheduler.ScheduleExpression.expression(slack.schedule),
        target: target({}),
        timeWindow: scheduler.TimeWindow.off(),
      });
    if (jira)
      this.jiraSchedule = new scheduler.Schedule(this, 'JiraSchedule', {
        description: 'Bedrock Key Guard: scan what is new in Jira for Bedrock API keys',
        schedule: scheduler.ScheduleExpression.expression(jira.schedule),
        target: target({ source: 'jira' }),
        timeWindow: scheduler.TimeWindow.off(),
      });
    if (confluence && this.confluenceSecretArn)
      this.confluenceSchedule = new scheduler.Schedule(this, 'ConfluenceSchedule', {
        description: 'Bedrock Key Guard: scan what is new in Confluence for Bedrock API keys',
        schedule: scheduler.ScheduleExpression.expression(confluence.schedule),
        // The settings the function checks at every run (lambda/handlers/collaboration-scan-confluence.ts).
        target: target({
          source: 'confluence',
          siteUrl: confluence.siteUrl.replace(/\/+$/, ''),
          spaces: [...confluence.spaces],
          initialLookbackHours: confluence.initialLookbackHours,
          secretArn: this.confluenceSecretArn,
        }),
        timeWindow: scheduler.TimeWindow.off(),
      });
    const schedulerPolicy = this.schedulerRole.node.tryFindChild('DefaultPolicy');
    if (schedulerPolicy) {
      Validations.of(schedulerPolicy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(this.function.node.defaultChild as CfnElement)}.Arn>:*]`,
        reason:
          "lambda:InvokeFunction on the scan function's own versions and aliases (`<function ARN>:*`), as CDK's " +
          'LambdaInvoke target grants it; no other function can be invoked.',
      });
    }
  }
}
