import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { nagResourceId } from '../nag-finding';
import { BY_CHAIN_HOUR_INDEX } from './audit-tables';
import { FailureQueue } from './failure-queue';
import { KeyguardFunction } from './keyguard-function';

export interface AuditIntegrityProps {
  /** The decisions table, with its NEW_IMAGE stream and byChainHour index (AuditTables). */
  readonly decisionsTable: dynamodb.Table;
  /** Days every archived object is locked (config `audit.retentionDays`). */
  readonly retentionDays: number;
  /** EventBridge Scheduler expression of the digest (config `audit.digestSchedule`). */
  readonly digestSchedule: string;
}

/**
 * Tamper evidence of the decision record beyond the table (issue 10 item 6), after CloudTrail log file
 * integrity validation:
 * - `archive`: an S3 bucket with Object Lock in COMPLIANCE mode (versioned, as Object Lock requires; SSE-S3,
 *   TLS only, no public access, retained). Every decision and chain link is copied there from the table's
 *   stream by the archive function, and every signed digest by the digest function. Until an object's
 *   retention ends nobody, the account root included, can delete or overwrite it.
 * - `signingKey`: a KMS RSA_2048 SIGN_VERIFY key. Its key policy denies kms:Sign to every principal but the
 *   digest function's role; `keyguard audit verify` needs only kms:GetPublicKey and verifies locally.
 * - `digestFunction`: scheduled; signs the heads of the chains that grew since the previous digest.
 *
 * Construct ids are part of logical ids: renaming `Archive` or `SigningKey` replaces (and orphans) them.
 */
export class AuditIntegrity extends Construct {
  public readonly archive: s3.Bucket;
  public readonly signingKey: kms.Key;
  public readonly archiveFunction: lambda.IFunction;
  public readonly digestFunction: lambda.IFunction;
  public readonly failureQueue: sqs.Queue;
  public readonly schedule: scheduler.Schedule;

  constructor(scope: Construct, id: string, props: AuditIntegrityProps) {
    super(scope, id);
    const stack = Stack.of(this);

    this.archive = new s3.Bucket(this, 'Archive', {
      objectLockEnabled: true,
      objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(props.retentionDays)),
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Object Lock keeps every locked version, but a plain DELETE would still add a delete marker that hides the
    // current one from listings (a digest seemingly gone). Nobody deletes here, whatever their IAM policies say.
    this.archive.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'NobodyDeletesArchivedRecords',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
        resources: [this.archive.arnForObjects('*')],
      }),
    );
    Validations.of(this.archive).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Only the two audit functions of this construct write here, each write in their logs, and objects can ' +
        'be neither overwritten nor deleted (Object Lock, compliance mode), which is the property the archive ' +
        'exists for. Access logs would go to a second bucket needing the same exception; reads can be recorded ' +
        'with CloudTrail S3 data events where the organisation requires it.',
    });

    this.signingKey = new kms.Key(this, 'SigningKey', {
      keySpec: kms.KeySpec.RSA_2048,
      keyUsage: kms.KeyUsage.SIGN_VERIFY,
      description: 'Bedrock Key Guard: signs the digests of the audit hash chains',
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const failures = new FailureQueue(this, 'FailureQueue');
    this.failureQueue = failures.queue;

    // --- archive export: decisions table stream -> Object Lock bucket ---------------------------------------------
    const archiveFn = new KeyguardFunction(this, 'ArchiveFunction', {
      entry: 'lambda/handlers/audit-archive.ts',
      description: 'Copies every new decision and chain link to the Object Lock audit archive',
      environment: {
        POWERTOOLS_SERVICE_NAME: 'keyguard-audit-archive',
        ARCHIVE_BUCKET_NAME: this.archive.bucketName,
        ARCHIVE_RETENTION_DAYS: String(props.retentionDays),
      },
    });
    this.archiveFunction = archiveFn.function;
    archiveFn.function.addEventSource(decisionsStreamSource(props.decisionsTable, failures));
    archiveFn.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteLockedRecords',
        actions: ['s3:PutObject', 's3:PutObjectRetention'],
        resources: [
          this.archive.arnForObjects('decisions/*'),
          this.archive.arnForObjects('chains/*'),
          this.archive.arnForObjects('anomalies/*'),
        ],
      }),
    );

    // --- digest: scheduled, signs the chain heads --------------------------------------------------------------
    const digestFn = new KeyguardFunction(this, 'DigestFunction', {
      entry: 'lambda/handlers/audit-digest.ts',
      description: 'Signs a digest of the audit hash chain heads (scheduled)',
      timeout: Duration.minutes(5),
      environment: {
        POWERTOOLS_SERVICE_NAME: 'keyguard-audit-digest',
        DECISIONS_TABLE_NAME: props.decisionsTable.tableName,
        ARCHIVE_BUCKET_NAME: this.archive.bucketName,
        ARCHIVE_RETENTION_DAYS: String(props.retentionDays),
        SIGNING_KEY_ID: this.signingKey.keyArn,
      },
      onFailure: failures.destination(),
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
    });
    this.digestFunction = digestFn.function;
    const digestRole = digestFn.role;
    digestRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadChainHeadsAppendDigestLog',
        // Query: the digest log and the byChainHour index; Scan: the first digest only; PutItem: the digest log
        // (conditional on the item not existing).
        actions: ['dynamodb:Query', 'dynamodb:Scan', 'dynamodb:PutItem'],
        resources: [
          props.decisionsTable.tableArn,
          `${props.decisionsTable.tableArn}/index/${BY_CHAIN_HOUR_INDEX}`,
        ],
      }),
    );
    digestRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteLockedDigests',
        actions: ['s3:PutObject', 's3:PutObjectRetention'],
        resources: [this.archive.arnForObjects('digests/*')],
      }),
    );
    digestRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'SignDigests',
        actions: ['kms:Sign'],
        resources: [this.signingKey.keyArn],
      }),
    );
    // Only the digest function signs: the key policy denies kms:Sign to everyone else, whatever their IAM
    // policies allow (an administrator's kms:* included).
    this.signingKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyTheDigestFunctionSigns',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['kms:Sign'],
        resources: ['*'],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': digestRole.roleArn } },
      }),
    );

    const schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: `EventBridge Scheduler invoking ${this.node.path}`,
    });
    failures.encryptionKey.grant(schedulerRole, 'kms:GenerateDataKey', 'kms:Decrypt');
    this.schedule = new scheduler.Schedule(this, 'DigestSchedule', {
      description: 'Bedrock Key Guard: signed digest of the audit hash chains',
      schedule: scheduler.ScheduleExpression.expression(props.digestSchedule),
      target: new targets.LambdaInvoke(this.digestFunction, {
        role: schedulerRole,
        deadLetterQueue: this.failureQueue,
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
      }),
      timeWindow: scheduler.TimeWindow.off(),
    });

    // --- cdk-nag: each wildcard explained beside the policy that holds it ----------------------------------------
    const prefixReason = (what: string) =>
      `Object-level writes under one key prefix of the audit archive (${what}); the object names are not known ` +
      'in advance (one per record). Deletion is not granted, and Object Lock (compliance) prevents overwrites.';
    const archivePolicy = archiveFn.role.node.tryFindChild('DefaultPolicy');
    const digestPolicy = digestRole.node.tryFindChild('DefaultPolicy');
    for (const [policy, prefixes] of [
      [archivePolicy, ['decisions/*', 'chains/*', 'anomalies/*']],
      [digestPolicy, ['digests/*']],
    ] as const) {
      if (!policy) continue;
      for (const prefix of prefixes) {
        Validations.of(policy).acknowledge({
          id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, this.archive.arnForObjects(prefix))}]`,
          reason: prefixReason(prefix),
        });
      }
    }
    if (archivePolicy) {
      Validations.of(archivePolicy).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          "dynamodb:ListStreams, granted by CDK's DynamoEventSource, supports no resource-level permissions; the " +
          'stream reads themselves (DescribeStream, GetRecords, GetShardIterator) are scoped to the decisions ' +
          "table's stream.",
      });
    }
    // No KMS wildcard to acknowledge: the failure queue grants send only (FailureQueue.destination / eventSourceDlq).
    const schedulerPolicy = schedulerRole.node.tryFindChild('DefaultPolicy');
    if (schedulerPolicy) {
      Validations.of(schedulerPolicy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(
          digestFn.function.node.defaultChild as import('aws-cdk-lib').CfnElement,
        )}.Arn>:*]`,
        reason:
          "lambda:InvokeFunction on the digest function's own versions and aliases (`<function ARN>:*`), as CDK's " +
          'LambdaInvoke target grants it; no other function can be invoked.',
      });
    }
  }
}

/**
 * A reader of the decisions table's stream (the archive, the decision events): from the oldest record, batches of
 * 100, a failing record reported alone (batch item failures, bisection). Records stay in the stream for 24 h: keep
 * retrying within that, then hand the record range to `failures`.
 */
export function decisionsStreamSource(table: dynamodb.ITable, failures: FailureQueue): DynamoEventSource {
  return new DynamoEventSource(table, {
    startingPosition: lambda.StartingPosition.TRIM_HORIZON,
    batchSize: 100,
    bisectBatchOnError: true,
    reportBatchItemFailures: true,
    retryAttempts: 50,
    maxRecordAge: Duration.hours(24),
    onFailure: failures.eventSourceDlq(),
  });
}
