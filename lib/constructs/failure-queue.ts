import { Duration, Validations } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

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
}
