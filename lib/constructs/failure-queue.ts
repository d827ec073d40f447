import { Duration, Validations } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** What a producer calls on the queue: SendMessage (nothing reads the queue's attributes or resolves its URL). */
export const SEND_QUEUE_ACTIONS = ['sqs:SendMessage'] as const;

/**
 * What a producer needs on the key of an SSE-KMS queue (SQS Developer Guide, "Amazon SQS Key management":
 * producers need kms:GenerateDataKey and kms:Decrypt). CDK's grantSendMessages also grants kms:Encrypt,
 * kms:ReEncrypt* and GenerateDataKey* variants that sending never uses.
 */
export const SEND_KEY_ACTIONS = ['kms:GenerateDataKey', 'kms:Decrypt'] as const;

/**
 * Grants `grantee` exactly what sending to `queue` needs: sqs:SendMessage on the queue and, when the queue has a
 * customer-managed key, kms:GenerateDataKey + kms:Decrypt on that key. Used instead of `queue.grantSendMessages`,
 * which adds sqs:GetQueueAttributes, sqs:GetQueueUrl, kms:Encrypt and kms:ReEncrypt*.
 */
export function grantSendOnly(queue: sqs.IQueue, grantee: iam.IGrantable): void {
  queue.grant(grantee, ...SEND_QUEUE_ACTIONS);
  queue.encryptionMasterKey?.grant(grantee, ...SEND_KEY_ACTIONS);
}

/**
 * A Lambda on-failure (or on-success) destination on an SQS queue that grants the function only
 * {@link grantSendOnly}: a drop-in for aws-lambda-destinations' SqsDestination, whose bind() calls
 * grantSendMessages. Lambda sends the invocation record with the function's execution role.
 */
export function sendOnlyDestination(queue: sqs.IQueue): lambda.IDestination {
  return {
    bind(_scope: Construct, fn: lambda.IFunction): lambda.DestinationConfig {
      grantSendOnly(queue, fn);
      return { destination: queue.queueArn };
    },
  };
}

/**
 * An event source mapping's on-failure destination (streams) on an SQS queue that grants the function only
 * {@link grantSendOnly}: a drop-in for aws-lambda-event-sources' SqsDlq, whose bind() calls grantSendMessages.
 */
export function sendOnlyEventSourceDlq(queue: sqs.IQueue): lambda.IEventSourceDlq {
  return {
    bind(_target: lambda.IEventSourceMapping, targetHandler: lambda.IFunction): lambda.DlqDestinationConfig {
      grantSendOnly(queue, targetHandler);
      return { destination: queue.queueArn };
    },
  };
}

export interface FailureQueueProps {
  /**
   * Customer-managed key that encrypts the queue. A customer-managed key (not `alias/aws/sqs`) is required
   * when EventBridge delivers to the queue as a rule-target DLQ: only a customer-managed key's policy can
   * allow `events.amazonaws.com` to use it.
   * @default - a new key with automatic rotation
   */
  readonly encryptionKey?: kms.IKey;
  /** How long a failed event is kept for inspection and redrive. @default Duration.days(14) (the SQS maximum) */
  readonly retentionPeriod?: Duration;
}

/**
 * An SQS queue that holds what an asynchronous edge could not deliver (rule-target DLQ, Lambda on-failure
 * destination): KMS-encrypted with a customer-managed key, TLS-only, 14-day retention.
 *
 * Functions send to it through {@link destination} / {@link eventSourceDlq} / {@link grantSend}, never through
 * CDK's SqsDestination / SqsDlq / grantSendMessages: a sender gets sqs:SendMessage and the key's
 * GenerateDataKey + Decrypt, nothing more.
 */
export class FailureQueue extends Construct {
  /** The queue. */
  public readonly queue: sqs.Queue;
  /** The key that encrypts the queue. */
  public readonly encryptionKey: kms.IKey;

  constructor(scope: Construct, id: string, props: FailureQueueProps = {}) {
    super(scope, id);
    this.encryptionKey =
      props.encryptionKey ??
      new kms.Key(this, 'Key', {
        enableKeyRotation: true,
        description: `Encrypts the SQS queue ${this.node.path}`,
      });
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.encryptionKey,
      enforceSSL: true,
      retentionPeriod: props.retentionPeriod ?? Duration.days(14),
    });
    Validations.of(this.queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of an asynchronous edge (EventBridge rule-target DLQ or ' +
        'Lambda on-failure destination); SQS3 only recognises SQS redrive policies and Lambda DeadLetterConfig ' +
        'as DLQ use, and a DLQ of a DLQ would only move the problem.',
    });
  }

  /** Lets `grantee` (a function, a role) put messages on the queue: {@link grantSendOnly}. */
  public grantSend(grantee: iam.IGrantable): void {
    grantSendOnly(this.queue, grantee);
  }

  /** This queue as a function's on-failure destination (asynchronous invocations), granting send only. */
  public destination(): lambda.IDestination {
    return sendOnlyDestination(this.queue);
  }

  /** This queue as an event source mapping's on-failure destination (DynamoDB / Kinesis streams), send only. */
  public eventSourceDlq(): lambda.IEventSourceDlq {
    return sendOnlyEventSourceDlq(this.queue);
  }
}
