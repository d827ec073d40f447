import { SendMessageCommand, SQSClient, type SQSClientConfig } from '@aws-sdk/client-sqs';
import {
  UNDECIDED_MESSAGE_TYPE,
  type UndecidedLeakBatch,
  type UndecidedLeakSink,
  undecidedMessages,
} from '../domain/leak-undecided';

/**
 * The leak function's undecided-leaks queue (SQS, KMS-encrypted): one message per log batch with findings the
 * function could not decide (split when large), redacted records only (domain/leak-undecided.ts). Nothing consumes
 * the queue: an operator reads it (docs/operations.md, "Log quarantine"). A send that still fails after the SDK's retries
 * throws.
 */
export class SqsUndecidedLeaks implements UndecidedLeakSink {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async record(batch: UndecidedLeakBatch): Promise<void> {
    if (batch.leaks.length === 0) return;
    for (const body of undecidedMessages(batch)) {
      await this.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.queueUrl,
          MessageBody: body,
          MessageAttributes: { type: { DataType: 'String', StringValue: UNDECIDED_MESSAGE_TYPE } },
        }),
      );
    }
  }
}

/**
 * The queue with its own SQS client (`retry`: clients.ts's RETRY_POLICY). The leak function imports this module only
 * when a batch has findings it could not decide (lambda/handlers/leak.ts), so that the SQS client is neither loaded
 * nor built at a cold start. Kept free of clients.ts: a module imported from one reached through `import()` is
 * initialised lazily too, with every client it imports (esbuild), so importing it here would defeat the deferral.
 */
export function undecidedLeaksQueue(queueUrl: string, retry: SQSClientConfig): SqsUndecidedLeaks {
  return new SqsUndecidedLeaks(new SQSClient(retry), queueUrl);
}
