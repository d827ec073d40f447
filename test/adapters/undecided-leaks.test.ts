import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { RETRY_POLICY } from '../../lambda/adapters/clients';
import { undecidedLeaksQueue } from '../../lambda/adapters/undecided-leaks';

const QUEUE = 'https://sqs.us-east-1.amazonaws.com/123456789012/keyguard-undecided-leaks';

test('the undecided-leaks queue the leak function loads on first use sends through an SQS client with the retry policy', async () => {
  // Prepare
  const sqs = mockClient(SQSClient);
  sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });
  const queue = undecidedLeaksQueue(QUEUE, RETRY_POLICY);

  // Act
  await queue.record({
    logGroup: '/app/one',
    logStream: 's-1',
    leaks: [
      {
        kind: 'LONG_TERM',
        fingerprint: 'sha256:0123456789abcdef',
        redacted: 'ABSK****',
        verification: null,
        reason: 'deadline',
        sightings: 1,
        logEvents: [],
      },
    ],
  });

  // Assess: one message to the queue, built by a client with the shared retry settings.
  expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 1);
  expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, { QueueUrl: QUEUE });
  const client = sqs.send.thisValues[0] as unknown as SQSClient;
  expect(await client.config.maxAttempts()).toBe(RETRY_POLICY.maxAttempts);
  sqs.restore();
});
