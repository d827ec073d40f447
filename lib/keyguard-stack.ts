import { CfnOutput, Stack, type StackProps, Token, Validations } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { Config } from '../lambda/shared/config';
import { Approvals } from './constructs/approvals';
import { AuditIntegrity } from './constructs/audit-integrity';
import { AuditTables } from './constructs/audit-tables';
import { ChatNotices } from './constructs/chat-notices';
import { CollaborationScan } from './constructs/collaboration-scan';
import { CredentialEventFunction } from './constructs/credential-event-function';
import { CredentialEventRule } from './constructs/credential-event-rule';
import { DecisionEvents } from './constructs/decision-events';
import { EffectivePolicy } from './constructs/effective-policy';
import { GovernanceBus } from './constructs/governance-bus';
import { InventorySweep } from './constructs/inventory-sweep';
import { KeyUsageFunction } from './constructs/key-usage-function';
import { KEYGUARD_RUNTIME } from './constructs/keyguard-function';
import { LeakQuarantine } from './constructs/leak-quarantine';
import { type HubDecidingFunction, ORG_SETTINGS_PARAMETER_NAME, OrgHub } from './constructs/org-hub';
import type { HubDecider } from './constructs/org-roles';
import { OrgSweep } from './constructs/org-sweep';
import { OwnerAlerts } from './constructs/owner-alerts';
import { ScanReporterPolicy } from './constructs/scan-reporter-policy';
import { SecurityHubFindings } from './constructs/security-hub-findings';
import { SelftestPolicy } from './constructs/selftest-policy';
import { UsageForwarding } from './constructs/usage-forwarding';

/** The only region keyguard can work in: see {@link RegionError}. */
export const GOVERNANCE_REGION = 'us-east-1';

/** Thrown when the stack is asked for a region other than us-east-1. */
export class RegionError extends Error {
  constructor(region: string) {
    super(
      `region: got ${JSON.stringify(region)}; allowed: "${GOVERNANCE_REGION}". IAM is a global service: its ` +
        `CloudTrail events reach EventBridge only on the ${GOVERNANCE_REGION} default event bus, so a credential-event ` +
        `rule deployed in ${region} would never fire. Deploy BedrockKeyGuard to ${GOVERNANCE_REGION} ` +
        `(drop -c region=${region}).`,
    );
    this.name = 'RegionError';
  }
}

/** Throws {@link RegionError} unless `region` is us-east-1 (an unresolved token is accepted). */
export function assertGovernanceRegion(region: string): void {
  if (!Token.isUnresolved(region) && region !== GOVERNANCE_REGION) throw new RegionError(region);
}

export interface KeyguardStackProps extends StackProps {
  /** The validated policy (see lambda/shared/config.ts). */
  readonly config: Config;
  /**
   * Account whose Bedrock keys are governed.
   * @default - the stack's own account
   */
  readonly governedAccountId?: string;
}

/** Bedrock Key Guard, single-account mode. Pinned to us-east-1 (IAM events arrive only there). */
export class KeyguardStack extends Stack {
  public readonly tables: AuditTables;
  /** Signed digests of the audit hash chains and the Object Lock archive of the decision record. */
  public readonly auditIntegrity: AuditIntegrity;
  public readonly alerts: OwnerAlerts;
  public readonly approvals: Approvals;
  public readonly credentialEvents: CredentialEventFunction;
  public readonly credentialEventRule: CredentialEventRule;
  public readonly sweep: InventorySweep;
  /** The log quarantine, when `leakDetection.logGroups` names log groups. */
  public readonly leakQuarantine: LeakQuarantine;
  /** Scheduled Slack, Jira and Confluence scanning, when `leakDetection.slack`, `jira` or `confluence` is set. */
  public readonly collaborationScan?: CollaborationScan;
  /**
   * The governance bus, when `usage.regions` lists regions (flow 3; with its usage queue) or in organization mode
   * (spokes forward to it).
   */
  public readonly governanceBus: GovernanceBus;
  /** Every new decision put on the governance bus (source keyguard.decisions), from the decisions table's stream. */
  public readonly decisionEvents: DecisionEvents;
  /** Critical notices in Slack / Teams channels, when `notifications.chat` is set (issue 16 item 4). */
  public readonly chatNotices?: ChatNotices;
  /** Security Hub findings from the decision events, when `findings.securityHub` is true (issue 16 item 1). */
  public readonly securityHubFindings?: SecurityHubFindings;
  /** The managed policy `keyguard scan --quarantine` needs (PutEvents on the governance bus, its source only). */
  public readonly scanReporterPolicy: ScanReporterPolicy;
  /** Organization mode's hub additions (forwarded-event rule, settings parameter, cross-account access). */
  public readonly organizationHub?: OrgHub;
  /** Organization mode: the sweep queue, its scheduler function and schedule (one message per governed account). */
  public readonly organizationSweep?: OrgSweep;
  /** The key-usage function, when `usage.regions` lists regions. */
  public readonly keyUsage?: KeyUsageFunction;
  /** us-east-1's own forwarding to the governance bus, when `usage.regions` lists us-east-1. */
  public readonly usageForwarding?: UsageForwarding;
  /** The effective policy (config, policyVersion, mode) published for the CLI in an SSM parameter. */
  public readonly effectivePolicy: EffectivePolicy;
  /** The managed policy `keyguard selftest` needs (attached to nothing). */
  public readonly selftestPolicy: SelftestPolicy;

  constructor(scope: Construct, id: string, props: KeyguardStackProps) {
    super(scope, id, { description: 'Bedrock Key Guard: governs Amazon Bedrock API keys', ...props });
    assertGovernanceRegion(this.region);

    const usageRegions = props.config.usage.regions;
    this.tables = new AuditTables(this, 'AuditTables', { usageTracking: usageRegions.length > 0 });
    this.auditIntegrity = new AuditIntegrity(this, 'AuditIntegrity', {
      decisionsTable: this.tables.decisions,
      retentionDays: props.config.audit.retentionDays,
      digestSchedule: props.config.audit.digestSchedule,
    });
    this.alerts = new OwnerAlerts(this, 'OwnerAlerts', {
      subscriptions: props.config.notifications.subscriptions,
    });
    this.approvals = new Approvals(this, 'Approvals', {
      config: props.config,
      keysTable: this.tables.keys,
      decisionsTable: this.tables.decisions,
      governedAccountId: props.governedAccountId,
    });
    this.credentialEvents = new CredentialEventFunction(this, 'CredentialEventFunction', {
      config: props.config,
      decisionsTable: this.tables.decisions,
      keysTable: this.tables.keys,
      approvalsTable: this.approvals.table,
      idempotencyTable: this.tables.idempotency,
      topic: this.alerts.topic,
      governedAccountId: props.governedAccountId,
      usageTable: this.tables.usage,
    });
    this.credentialEventRule = new CredentialEventRule(this, 'CredentialEventRule', {
      target: this.credentialEvents.function,
    });
    this.sweep = new InventorySweep(this, 'InventorySweep', {
      config: props.config,
      decisionsTable: this.tables.decisions,
      keysTable: this.tables.keys,
      approvalsTable: this.approvals.table,
      topic: this.alerts.topic,
      governedAccountId: props.governedAccountId,
      usageTable: this.tables.usage,
      // Organization mode: the sweep function consumes the sweep queue (OrgSweep below) instead.
      ...(props.config.organization ? { scheduled: false } : {}),
    });

    const organization = props.config.organization;
    // In every deployment (issue 15): `keyguard scan --quarantine` reports leaks to it, whatever else is deployed.
    this.governanceBus = new GovernanceBus(this, 'GovernanceBus', {
      usage: this.tables.usage !== undefined,
      ...(organization ? { organizationId: organization.id } : {}),
    });
    new CfnOutput(this, 'GovernanceBusArn', {
      description:
        'Governance bus: keyguard scan --quarantine reports leaks to it' +
        (this.tables.usage ? '; every usage region forwards Bedrock API key use to it' : '') +
        (organization ? '; the spokes forward IAM credential events to it' : ''),
      value: this.governanceBus.bus.eventBusArn,
    });
    this.decisionEvents = new DecisionEvents(this, 'DecisionEvents', {
      decisionsTable: this.tables.decisions,
      bus: this.governanceBus.bus,
      topic: this.alerts.topic,
      ocsf: props.config.decisionEvents?.ocsf ?? false,
    });
    new CfnOutput(this, 'DecisionEventsFailureQueueUrl', {
      description:
        'Decisions table stream records whose decision events could not be put on the governance bus after 24 h ' +
        'of retries (the record range, never the decision)',
      value: this.decisionEvents.failureQueue.queueUrl,
    });
    // Optional (issue 16 item 4): critical notices also in chat, from the decision events on the bus.
    const chat = props.config.notifications.chat;
    if (chat) {
      this.chatNotices = new ChatNotices(this, 'ChatNotices', {
        bus: this.governanceBus.bus,
        alarmTopic: this.alerts.topic,
        slack: chat.slack,
        teams: chat.teams,
      });
      new CfnOutput(this, 'ChatNoticesTopicArn', {
        description:
          'Critical notices for the chat channels (Amazon Q Developer in chat applications custom notifications)',
        value: this.chatNotices.topic.topicArn,
      });
    }
    if (props.config.findings.securityHub) {
      this.securityHubFindings = new SecurityHubFindings(this, 'SecurityHubFindings', {
        bus: this.governanceBus.bus,
        topic: this.alerts.topic,
      });
      new CfnOutput(this, 'SecurityHubFindingsDeadLetterQueueUrl', {
        description:
          'Decision events the Security Hub findings function failed on 5 times (the decision, no key)',
        value: this.securityHubFindings.deadLetterQueue.queueUrl,
      });
      new CfnOutput(this, 'SecurityHubRuleDeadLetterQueueUrl', {
        description: 'Decision events EventBridge could not queue for the Security Hub findings function',
        value: this.securityHubFindings.ruleDeadLetterQueue.queueUrl,
      });
    }
    this.scanReporterPolicy = new ScanReporterPolicy(this, 'ScanReporterPolicy', {
      bus: this.governanceBus.bus,
    });
    new CfnOutput(this, 'ScanReporterPolicyArn', {
      description:
        'Managed policy to attach to a CI role that runs keyguard scan --quarantine (PutEvents of keyguard.scan ' +
        'events on the governance bus only)',
      value: this.scanReporterPolicy.policy.managedPolicyArn,
    });
    const usageQueues = this.governanceBus.usage;
    if (this.tables.usage && this.governanceBus && usageQueues) {
      this.keyUsage = new KeyUsageFunction(this, 'KeyUsageFunction', {
        config: props.config,
        queue: usageQueues.queue,
        usageTable: this.tables.usage,
        decisionsTable: this.tables.decisions,
        keysTable: this.tables.keys,
        approvalsTable: this.approvals.table,
        topic: this.alerts.topic,
        governedAccountId: props.governedAccountId,
        // Organization mode: one member account's failure fails only its messages (the handler reports them).
        ...(organization ? { reportBatchItemFailures: true } : {}),
      });
      // Bedrock calls in us-east-1 reach only this region's default bus: forward them like any other region's.
      if (usageRegions.includes(GOVERNANCE_REGION)) {
        this.usageForwarding = new UsageForwarding(this, 'UsageForwarding', {
          governanceBus: this.governanceBus.bus,
        });
      }
      new CfnOutput(this, 'UsageTableName', {
        description: 'Last use per key, user and short-term key principal (flow 3)',
        value: this.tables.usage.tableName,
      });
      new CfnOutput(this, 'UsageDeadLetterQueueUrl', {
        description: 'Usage events the key-usage function failed on 5 times',
        value: usageQueues.deadLetterQueue.queueUrl,
      });
      new CfnOutput(this, 'UsageRuleDeadLetterQueueUrl', {
        description: 'Usage events EventBridge could not deliver to the usage queue',
        value: usageQueues.ruleDeadLetterQueue.queueUrl,
      });
      if (this.usageForwarding) {
        new CfnOutput(this, 'UsageForwardingDeadLetterQueueUrl', {
          description: 'us-east-1 usage events EventBridge could not put on the governance bus',
          value: this.usageForwarding.deadLetterQueue.queueUrl,
        });
      }
    }

    // In every deployment (issue 15): the leak function decides the keys keyguard scan --quarantine reports on the
    // governance bus, and, when leakDetection.logGroups names any, the keys found in those log groups.
    this.leakQuarantine = new LeakQuarantine(this, 'LeakQuarantine', {
      config: props.config,
      logGroupNames: props.config.leakDetection.logGroups,
      usageTable: this.tables.usage,
      decisionsTable: this.tables.decisions,
      keysTable: this.tables.keys,
      approvalsTable: this.approvals.table,
      topic: this.alerts.topic,
      governedAccountId: props.governedAccountId,
      scanReportBus: this.governanceBus.bus,
    });
    new CfnOutput(this, 'LeakUndecidedQueueUrl', {
      description: 'Leak findings the leak function could not decide (redacted records: no key, no log line)',
      value: this.leakQuarantine.undecidedQueue.queueUrl,
    });
    new CfnOutput(this, 'ScanReportDeadLetterQueueUrl', {
      description:
        'keyguard scan --quarantine reports EventBridge could not deliver to the leak function (no key)',
      value: (this.leakQuarantine.scanReportDeadLetterQueue as { queueUrl: string }).queueUrl,
    });

    // Optional (issue 15 §3): a scheduled function reports keys found in Slack, Jira and Confluence on the same
    // bus, as keyguard scan does.
    const { slack, jira, confluence } = props.config.leakDetection;
    if (slack || jira || confluence) {
      this.collaborationScan = new CollaborationScan(this, 'CollaborationScan', {
        bus: this.governanceBus.bus,
        ...(slack
          ? {
              slack: {
                schedule: slack.schedule,
                channels: slack.channels,
                initialLookbackHours: slack.initialLookbackHours,
                ...(slack.apiUrl ? { apiUrl: slack.apiUrl } : {}),
              },
            }
          : {}),
        ...(jira
          ? {
              jira: {
                schedule: jira.schedule,
                siteUrl: jira.siteUrl,
                initialLookbackHours: jira.initialLookbackHours,
                ...(jira.projects ? { projects: jira.projects } : {}),
                ...(jira.jql ? { jql: jira.jql } : {}),
              },
            }
          : {}),
        ...(confluence
          ? {
              confluence: {
                schedule: confluence.schedule,
                siteUrl: confluence.siteUrl,
                spaces: confluence.spaces,
                initialLookbackHours: confluence.initialLookbackHours,
              },
            }
          : {}),
      });
      if (this.collaborationScan.slackTokenSecretArn)
        new CfnOutput(this, 'SlackTokenSecretArn', {
          description:
            'The Slack token of the scheduled scan: created empty, put it in with aws secretsmanager put-secret-value',
          value: this.collaborationScan.slackTokenSecretArn,
        });
      if (this.collaborationScan.jiraSecretArn)
        new CfnOutput(this, 'JiraSecretArn', {
          description:
            'The Jira e-mail and API token of the scheduled scan, as JSON {"email","apiToken"}: created empty, put ' +
            'it in with aws secretsmanager put-secret-value',
          value: this.collaborationScan.jiraSecretArn,
        });
      if (this.collaborationScan.confluenceSecretArn)
        new CfnOutput(this, 'ConfluenceSecretArn', {
          description:
            'The Confluence e-mail and API token of the scheduled scan, as JSON {"email","apiToken"}: created empty, ' +
            'put it in with aws secretsmanager put-secret-value',
          value: this.collaborationScan.confluenceSecretArn,
        });
      new CfnOutput(this, 'CollaborationScanFailureQueueUrl', {
        description:
          'Scheduled Slack, Jira and Confluence scan runs that failed after their retries (the schedule input: no key)',
        value: this.collaborationScan.failureQueue.queueUrl,
      });
    }

    if (organization && this.governanceBus) {
      const deciders: Partial<Record<HubDecider, HubDecidingFunction>> = {
        credentialEvent: this.credentialEvents,
        sweep: this.sweep,
        ...(this.leakQuarantine ? { leak: this.leakQuarantine } : {}),
        ...(this.keyUsage ? { keyUsage: this.keyUsage } : {}),
      };
      this.organizationHub = new OrgHub(this, 'OrganizationHub', {
        config: props.config,
        organization,
        bus: this.governanceBus.bus,
        credentialEventFunction: this.credentialEvents.function,
        deciders,
      });
      // Keys of the governed member accounts may be approved too (checked as credential-event checks them).
      this.approvals.governOrganization({
        settings: this.organizationHub.settings,
        readerRoleArn: this.organizationHub.readerRoleArn,
      });
      new CfnOutput(this, 'ForwardedEventDeadLetterQueueUrl', {
        description: 'Forwarded credential events EventBridge could not deliver to the function',
        value: this.organizationHub.forwardedCredentialEventRule.deadLetterQueue.queueUrl,
      });
      new CfnOutput(this, 'OrganizationSettingsParameter', {
        description: 'SSM parameter with the organization settings the hub functions read',
        value: this.organizationHub.settings.parameterName,
      });
      this.organizationSweep = new OrgSweep(this, 'OrganizationSweep', {
        config: props.config,
        sweep: this.sweep,
        orgSettingsParameter: this.organizationHub.settings,
        orgReaderRoleArn: this.organizationHub.readerRoleArn,
        hubAccountId: props.governedAccountId,
      });
      this.organizationHub.addOrganizationsReader(this.organizationSweep.schedulerFunctionRole);
      new CfnOutput(this, 'SweepQueueUrl', {
        description: 'One message per governed account and sweep round (organization mode)',
        value: this.organizationSweep.queue.queueUrl,
      });
      new CfnOutput(this, 'SweepDeadLetterQueueUrl', {
        description: 'Accounts whose sweep failed on every delivery (each also reported to fallbackOwner)',
        value: this.organizationSweep.deadLetterQueue.queueUrl,
      });
      new CfnOutput(this, 'SweepSchedulerFailureQueueUrl', {
        description: 'Organization sweep rounds the scheduler function could not queue after its retries',
        value: this.organizationSweep.schedulerFailureQueue.queueUrl,
      });
    }

    this.effectivePolicy = new EffectivePolicy(this, 'EffectivePolicy', {
      config: props.config,
      ...(this.organizationHub ? { organizationSettingsParameterName: ORG_SETTINGS_PARAMETER_NAME } : {}),
    });
    new CfnOutput(this, 'EffectivePolicyParameterName', {
      description:
        'SSM parameter with the effective policy (config, policyVersion, mode) the keyguard CLI evaluates with ' +
        '(KEYGUARD_POLICY_PARAMETER)',
      value: this.effectivePolicy.parameter.parameterName,
    });

    // What an operator needs after `cdk deploy`: where to read the audit and where failures wait.
    new CfnOutput(this, 'DecisionsTableName', {
      description: 'Append-only audit of every decision (query by pk "<account>#<keyId>" or index byOwner)',
      value: this.tables.decisions.tableName,
    });
    new CfnOutput(this, 'AuditArchiveBucketName', {
      value: this.auditIntegrity.archive.bucketName,
      description:
        'Object Lock archive of decisions, chain links and signed digests (keyguard audit verify --archive-bucket)',
    });
    new CfnOutput(this, 'AuditSigningKeyArn', {
      value: this.auditIntegrity.signingKey.keyArn,
      description: 'KMS key that signs the audit digests (verify with kms:GetPublicKey)',
    });
    new CfnOutput(this, 'AuditFailureQueueUrl', {
      value: this.auditIntegrity.failureQueue.queueUrl,
      description: 'Archive exports and digest runs that failed after their retries',
    });
    new CfnOutput(this, 'KeysTableName', {
      description: 'Current state of every Bedrock key seen',
      value: this.tables.keys.tableName,
    });
    new CfnOutput(this, 'ApprovalsTableName', {
      description:
        'Approvals and reviews, written only by the approval function (read by keyguard inventory)',
      value: this.approvals.table.tableName,
    });
    new CfnOutput(this, 'ApprovalsUrl', {
      description:
        'IAM-authenticated URL of the approval function (keyguard approve --url; KEYGUARD_APPROVALS_URL)',
      value: this.approvals.url.url,
    });
    this.selftestPolicy = new SelftestPolicy(this, 'SelftestPolicy', {
      decisionsTable: this.tables.decisions,
      policyParameter: this.effectivePolicy.parameter,
      leakLogGroups: props.config.leakDetection.logGroups,
    });
    new CfnOutput(this, 'SelftestPolicyArn', {
      description:
        'Managed policy to attach to whoever runs keyguard selftest (throwaway users keyguard-selftest-* only)',
      value: this.selftestPolicy.policy.managedPolicyArn,
    });
    new CfnOutput(this, 'ApproverPolicyArn', {
      description: 'Managed policy to attach to approvers: lets them call the approval function URL',
      value: this.approvals.approverPolicy.managedPolicyArn,
    });
    new CfnOutput(this, 'OwnerNoticeTopicArn', {
      description: 'SNS topic of owner notices (attributes: owner, severity, action)',
      value: this.alerts.topic.topicArn,
    });
    new CfnOutput(this, 'EventFailureQueueUrl', {
      description: 'Credential events the function failed on after all retries',
      value: this.credentialEvents.failureQueue.queueUrl,
    });
    new CfnOutput(this, 'EventDeadLetterQueueUrl', {
      description: 'Credential events EventBridge could not deliver to the function',
      value: this.credentialEventRule.deadLetterQueue.queueUrl,
    });

    new CfnOutput(this, 'SweepFunctionName', {
      description: 'Inventory sweep function (invoke with {} to sweep now; logs show progress and counters)',
      value: this.sweep.function.functionName,
    });
    new CfnOutput(this, 'SweepFailureQueueUrl', {
      description: 'Sweep invocations that failed after all retries, or that the schedules could not deliver',
      value: this.sweep.failureQueue.queueUrl,
    });

    const functions = [
      this.credentialEvents.function,
      this.sweep.function,
      this.auditIntegrity.archiveFunction,
      this.auditIntegrity.digestFunction,
      this.approvals.function,
      this.decisionEvents.function,
    ];
    if (this.leakQuarantine) functions.push(this.leakQuarantine.function);
    if (this.keyUsage) functions.push(this.keyUsage.function);
    if (this.collaborationScan) functions.push(this.collaborationScan.function);
    if (this.organizationSweep) functions.push(this.organizationSweep.schedulerFunction);
    if (this.securityHubFindings) functions.push(this.securityHubFindings.function);
    for (const fn of functions) {
      Validations.of(fn).acknowledge({
        id: 'AwsSolutions-L1',
        reason:
          `${KEYGUARD_RUNTIME.name} is deliberate: the bundle targets node22 and the toolchain and pinned ` +
          'AWS SDK are verified on it; it is a supported Lambda runtime. Moving to nodejs24.x changes ' +
          'KEYGUARD_RUNTIME and the bundle target together in keyguard-function.ts.',
      });
    }
  }
}
