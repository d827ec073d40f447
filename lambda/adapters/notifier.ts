import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { buildNotice, type Notice } from '../domain/notice';
import type { Notifier } from '../domain/pipeline';
import type { Decision } from '../domain/types';
import type { Policy } from '../shared/config';
import { visible } from '../shared/visible-text';

/** Organizations allows 50 characters in an account name; more is not a name (and is not repeated). */
const ACCOUNT_NAME_MAX = 50;

export interface SnsNotifierOptions {
  /**
   * The key's account name (organization mode): sent as the `accountName` attribute when known.
   * @default none: only the `account` id attribute
   */
  accountName?: (accountId: string) => Promise<string | null>;
}

/**
 * Owner notices on SNS. Message attributes `owner`, `severity`, `action` and `account` (the key's account id) let
 * each subscription filter (e.g. a team's address receives only its own keys, an account's team only that
 * account's). The message is built from the decision only.
 */
export class SnsNotifier implements Notifier {
  constructor(
    private readonly sns: SNSClient,
    private readonly topicArn: string,
    private readonly config: Policy,
    private readonly options: SnsNotifierOptions = {},
  ) {}

  async notify(decision: Decision): Promise<void> {
    await this.publish(buildNotice(decision, this.config));
  }

  /** Publishes a built notice (one key's, an owner digest or an account summary), with its attributes. */
  async publish(notice: Notice): Promise<void> {
    const account = notice.attributes.account;
    const name = this.options.accountName ? await this.options.accountName(account) : null;
    const shownName = name ? visible(name).slice(0, ACCOUNT_NAME_MAX) : '';
    await this.sns.send(
      new PublishCommand({
        TopicArn: this.topicArn,
        Subject: notice.subject,
        Message: notice.body,
        MessageAttributes: {
          owner: { DataType: 'String', StringValue: notice.attributes.owner },
          severity: { DataType: 'String', StringValue: notice.attributes.severity },
          action: { DataType: 'String', StringValue: notice.attributes.action },
          account: { DataType: 'String', StringValue: notice.attributes.account },
          ...(shownName ? { accountName: { DataType: 'String', StringValue: shownName } } : {}),
        },
      }),
    );
  }
}
