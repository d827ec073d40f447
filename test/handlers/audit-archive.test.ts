import { PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { createAuditArchiveHandler } from '../../lambda/handlers/audit-archive-handler';

const s3 = mockClient(S3Client);
const logger = { info: jest.fn(), warn: jest.fn() };
const NOW = new Date('2026-12-07T12:00:00.000Z');

function record(
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE',
  item: Record<string, unknown>,
  seqNo: string,
): DynamoDBStreamEvent['Records'][number] {
  const keys = { pk: item.pk, sk: item.sk };
  return {
    eventID: `ev-${seqNo}`,
    eventName,
    dynamodb: {
      ApproximateCreationDateTime: NOW.getTime() / 1000,
      SequenceNumber: seqNo,
      Keys: marshall(keys) as never,
      ...(eventName === 'REMOVE'
        ? {}
        : { NewImage: marshall(item, { removeUndefinedValues: true }) as never }),
    },
  };
}

const decisionItem = {
  pk: '111122223333#ACCAARCHIVEKEY000001',
  sk: '2026-12-07T11:59:00.000Z/event/e-1',
  accountId: '111122223333',
  keyId: 'ACCAARCHIVEKEY000001',
  action: 'ALLOW',
};
const linkItem = {
  pk: 'chain#111122223333#ACCAARCHIVEKEY000001',
  sk: '000000000001',
  seq: 1,
  hash: 'ab'.repeat(32),
};

function handler() {
  return createAuditArchiveHandler({
    archiveBucket: 'archive',
    retentionDays: 30,
    s3: s3 as unknown as S3Client,
    logger,
    now: () => NOW,
  });
}

beforeEach(() => {
  s3.reset();
  logger.warn.mockReset();
});

describe('audit archive export (decisions table stream → Object Lock bucket)', () => {
  it('writes each new decision and chain link once, locked in COMPLIANCE mode for the retention days', async () => {
    s3.on(PutObjectCommand).resolves({});

    const res = await handler()({
      Records: [record('INSERT', decisionItem, '1'), record('INSERT', linkItem, '2')],
    });

    expect(res).toEqual({ batchItemFailures: [] });
    const retain = new Date(NOW.getTime() + 30 * 86_400_000);
    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, {
      Bucket: 'archive',
      Key: 'decisions/111122223333/ACCAARCHIVEKEY000001/2026-12-07T11%3A59%3A00.000Z%2Fevent%2Fe-1.json',
      ObjectLockMode: 'COMPLIANCE',
      ObjectLockRetainUntilDate: retain,
      IfNoneMatch: '*',
    });
    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, {
      Key: 'chains/111122223333/ACCAARCHIVEKEY000001/000000000001.json',
      ObjectLockMode: 'COMPLIANCE',
    });
    const body = JSON.parse(String(s3.commandCalls(PutObjectCommand)[0]?.args[0].input.Body));
    expect(body).toEqual(decisionItem);
  });

  it('a redelivered record whose object exists (412) is not an error', async () => {
    s3.on(PutObjectCommand).rejects(
      new S3ServiceException({
        name: 'PreconditionFailed',
        $fault: 'client',
        $metadata: { httpStatusCode: 412 },
      }),
    );

    const res = await handler()({ Records: [record('INSERT', decisionItem, '1')] });

    expect(res).toEqual({ batchItemFailures: [] });
  });

  it('archives a modification or removal as an anomaly (the change itself is put on record)', async () => {
    s3.on(PutObjectCommand).resolves({});

    await handler()({ Records: [record('REMOVE', decisionItem, '7')] });

    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, {
      Key: `anomalies/${NOW.toISOString()}-ev-7.json`,
    });
    expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('anomaly'), expect.anything());
  });

  it('reports the first failed record so the stream retries from it, never skipping one', async () => {
    s3.on(PutObjectCommand).resolvesOnce({}).rejects(new Error('SlowDown'));

    const res = await handler()({
      Records: [
        record('INSERT', decisionItem, '1'),
        record('INSERT', linkItem, '2'),
        record('INSERT', decisionItem, '3'),
      ],
    });

    expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: '2' }] });
    expect(s3).toHaveReceivedCommandTimes(PutObjectCommand, 2);
  });
});
