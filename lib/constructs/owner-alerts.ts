import { Annotations, Aws } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { FailureQueue } from './failure-queue';

/** Id of the synth warning for a topic nobody is subscribed to (acknowledge it with this id). */
export const NO_SUBSCRIPTIONS_WARNING = 'keyguard:no-subscriptions';

/** Message attributes the functions publish with every owner notice (all of type String). */
export const NOTICE_ATTRIBUTES = ['owner', 'severity', 'action'] as const;

/** One email subscription to owner notices. */
export interface OwnerAlertSubscription {
  /** Email endpoint. */
  readonly email: string;
  /**
   * Deliver only notices whose `owner` message attribute is one of these values (SNS filter policy).
   * @default - every notice
   */
  readonly owners?: readonly string[];
}

export interface OwnerAlertsProps {
  /** Email subscriptions, typically `config.notifications.subscriptions`. @default - none */
  readonly subscriptions?: readonly OwnerAlertSubscription[];
  /** Key that encrypts the topic. @default - a new customer-managed key with automatic rotation */
  readonly encryptionKey?: kms.IKey;
}

/** The owner-notice topic: KMS-encrypted with a customer-managed key, TLS-only publishing, email subscribers. */
export class OwnerAlerts extends Construct {
  /** The topic the functions publish owner notices to. */
  public readonly topic: sns.Topic;
  /** The key that encrypts the topic (publishers need kms:Decrypt and kms:GenerateDataKey* on it: use grantPublish). */
  public readonly encryptionKey: kms.IKey;
  /**
   * Where SNS puts notices it could not deliver to a subscription (SNS redrive policy), so a notice is
   * never silently lost. Undefined when there are no subscriptions.
   */
  public readonly deliveryFailures?: sqs.IQueue;

  constructor(scope: Construct, id: string, props: OwnerAlertsProps = {}) {
    super(scope, id);
    this.encryptionKey =
      props.encryptionKey ??
      new kms.Key(this, 'Key', {
        enableKeyRotation: true,
        description: `Encrypts the owner-notice topic ${this.node.path}`,
      });
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'Bedrock Key Guard owner notices',
      masterKey: this.encryptionKey,
      enforceSSL: true,
    });

    const subs = props.subscriptions ?? [];
    if (subs.length === 0) {
      // A warning, not an error: synth without credentials or a config must keep working, and a subscriber may
      // be added outside the stack. But SNS drops a message with no subscriber, silently.
      Annotations.of(this).addWarningV2(
        NO_SUBSCRIPTIONS_WARNING,
        'notifications.subscriptions is empty: the owner-notice topic has no subscriber, so owner notices ' +
          "(reminders, deactivations, leaks) and the stack's alarms would reach nobody. Add at least one " +
          '{ "email": "..." } to notifications.subscriptions in keyguard.config.json ' +
          '(or subscribe to the topic outside this stack).',
      );
    } else {
      const failures = new FailureQueue(this, 'DeliveryFailures');
      // SNS encrypts what it redrives with the queue's key: allow it, for this topic only.
      failures.encryptionKey.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal('sns.amazonaws.com')],
          actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
          resources: ['*'],
          conditions: { ArnEquals: { 'aws:SourceArn': this.topic.topicArn } },
        }),
      );
      this.deliveryFailures = failures.queue;
    }

    const seen = new Set<string>();
    subs.forEach((subscription, index) => {
      const email = subscription.email.toLowerCase();
      if (seen.has(email)) {
        // SNS keeps one subscription per (protocol, endpoint): a second entry would silently replace the first.
        throw new Error(
          `notifications.subscriptions[${index}].email: got ${JSON.stringify(subscription.email)}; ` +
            'allowed: each email at most once (merge the owners lists instead)',
        );
      }
      seen.add(email);
      const owners = subscription.owners;
      this.topic.addSubscription(
        new subscriptions.EmailSubscription(subscription.email, {
          filterPolicy:
            owners && owners.length > 0
              ? { owner: sns.SubscriptionFilter.stringFilter({ allowlist: [...owners] }) }
              : undefined,
          deadLetterQueue: this.deliveryFailures,
        }),
      );
    });
  }
}

/**
 * Lets CloudWatch publish alarms to the owner-notice topic, and use the topic's key when it is encrypted (SNS docs,
 * "compatibility with AWS services"), only on behalf of `alarms`: one alarm name, or a name prefix ending in `*`.
 * Matched by ARN, not by reference: the key's policy naming an alarm that names the topic that names the key would
 * be a cycle. The statements are `sid` and `${sid}Encrypted`.
 */
export function allowAlarmsToPublish(topic: sns.ITopic, sid: string, alarms: string): void {
  const sourceArn = `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${Aws.ACCOUNT_ID}:alarm:${alarms}`;
  const conditions = {
    [alarms.endsWith('*') ? 'ArnLike' : 'ArnEquals']: { 'aws:SourceArn': sourceArn },
    StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
  };
  const cloudWatch = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
  topic.addToResourcePolicy(
    new iam.PolicyStatement({
      sid,
      principals: [cloudWatch],
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
      conditions,
    }),
  );
  topic.masterKey?.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: `${sid}Encrypted`,
      principals: [cloudWatch],
      actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
      resources: ['*'],
      conditions,
    }),
  );
}
