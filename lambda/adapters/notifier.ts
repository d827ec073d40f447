import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { buildNotice } from '../domain/notice';
import type { Notifier } from '../domain/pipeline';
import type { Decision } from '../domain/types';
import type { Policy } from '../shared/config';

/**
 * Owner notices on SNS. Message attributes `owner`, `severity` and `action` let each subscription filter
 * (e.g. a team's address receives only its own keys). The message is built from the decision only.
 */
export class SnsNotifier implements Notifier {
  constructor(
    private readonly sns: SNSClient,
    private readonly topicArn: string,
    private readonly config: Policy,
  ) {}

  async notify(decision: Decision): Promise<void> {
    const notice = buildNotice(decision, this.config);
    await this.sns.send(
      new PublishCommand({
        TopicArn: this.topicArn,
        Subject: notice.subject,
        Message: notice.body,
        MessageAttributes: {
          owner: { DataType: 'String', StringValue: notice.attributes.owner },
          severity: { DataType: 'String', StringValue: notice.attributes.severity },
          action: { DataType: 'String', StringValue: notice.attributes.action },
        },
      }),
    );
  }
}
