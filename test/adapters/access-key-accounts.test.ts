import { GetAccessKeyInfoCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { AccessKeyAccountError, StsAccessKeyAccounts } from '../../lambda/adapters/access-key-accounts';

const sts = mockClient(STSClient);

beforeEach(() => sts.reset());

describe('StsAccessKeyAccounts', () => {
  it('asks STS GetAccessKeyInfo once per access key id and keeps the answer', async () => {
    // Prepare
    sts.on(GetAccessKeyInfoCommand).resolves({ Account: '333333333333' });
    const accounts = new StsAccessKeyAccounts(new STSClient({ region: 'us-east-1' }));

    // Act
    const first = await accounts.accountOf('ASIAMEMBERASIGNER001');
    const again = await accounts.accountOf('ASIAMEMBERASIGNER001');

    // Assess
    expect([first, again]).toEqual(['333333333333', '333333333333']);
    expect(sts).toHaveReceivedCommandTimes(GetAccessKeyInfoCommand, 1);
    expect(sts).toHaveReceivedCommandWith(GetAccessKeyInfoCommand, { AccessKeyId: 'ASIAMEMBERASIGNER001' });
  });

  it('does not keep a failure: the next call asks again', async () => {
    // Prepare
    sts.on(GetAccessKeyInfoCommand).rejectsOnce(new Error('throttled')).resolves({ Account: '333333333333' });
    const accounts = new StsAccessKeyAccounts(new STSClient({ region: 'us-east-1' }));

    // Act
    const failed = await accounts.accountOf('ASIAMEMBERASIGNER001').catch((e: unknown) => e);
    const answered = await accounts.accountOf('ASIAMEMBERASIGNER001');

    // Assess
    expect(failed).toBeInstanceOf(Error);
    expect(answered).toBe('333333333333');
    expect(sts).toHaveReceivedCommandTimes(GetAccessKeyInfoCommand, 2);
  });

  it.each([
    ['an id STS would refuse, without asking', 'AKIA', undefined],
    ['an answer without a 12-digit account', 'ASIAMEMBERASIGNER001', { Account: 'not-an-account' }],
  ])('refuses %s (AccessKeyAccountError naming the id)', async (_what, id, answer) => {
    // Prepare
    sts.on(GetAccessKeyInfoCommand).resolves(answer ?? {});
    const accounts = new StsAccessKeyAccounts(new STSClient({ region: 'us-east-1' }));

    // Act
    const error = await accounts.accountOf(id).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(AccessKeyAccountError);
    expect(String((error as Error).message)).toContain(id);
    expect(sts).toHaveReceivedCommandTimes(GetAccessKeyInfoCommand, answer ? 1 : 0);
  });
});
