import { GetAccessKeyInfoCommand, STSClient } from '@aws-sdk/client-sts';
import { SDK_MAX_ATTEMPTS } from './clients';

/**
 * Which account an access key id belongs to (organization mode, issue 12): a short-term Bedrock key names only its
 * signer's access key id (`X-Amz-Credential`), and the signer must be traced in that account's CloudTrail event
 * history. STS GetAccessKeyInfo is AWS's documented answer ("returns the ID of the Amazon Web Services account to
 * which the keys belong", for AKIA and ASIA ids alike). It is answered by STS from the id alone, with the function's
 * own credentials, and says nothing about the key's state. The bits of newer ids that encode the account are not
 * documented and older ids do not follow them, so the id is not decoded here. Answers are kept for the container's
 * life (an id never changes account); a failure is not kept.
 */

/** The id, as the STS API accepts it (16 to 128 word characters). */
const ACCESS_KEY_ID = /^\w{16,128}$/;
const ACCOUNT_ID = /^\d{12}$/;

export interface AccessKeyAccountLookup {
  /** The 12-digit account the access key id belongs to; throws when STS cannot tell. */
  accountOf(accessKeyId: string): Promise<string>;
}

/** STS did not give an account for an access key id (malformed id, or an answer without one). */
export class AccessKeyAccountError extends Error {
  constructor(
    readonly accessKeyId: string,
    detail: string,
  ) {
    super(`the account of access key id ${accessKeyId} is not known: ${detail}`);
    this.name = 'AccessKeyAccountError';
  }
}

export class StsAccessKeyAccounts implements AccessKeyAccountLookup {
  private readonly sts: STSClient;
  private readonly known = new Map<string, Promise<string>>();

  /** @param sts @default an STS client with the standard retry mode, in the function's region */
  constructor(sts?: STSClient) {
    this.sts = sts ?? new STSClient({ maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' });
  }

  accountOf(accessKeyId: string): Promise<string> {
    let answer = this.known.get(accessKeyId);
    if (!answer) {
      answer = this.ask(accessKeyId);
      this.known.set(accessKeyId, answer);
      answer.catch(() => {
        if (this.known.get(accessKeyId) === answer) this.known.delete(accessKeyId);
      });
    }
    return answer;
  }

  private async ask(accessKeyId: string): Promise<string> {
    if (!ACCESS_KEY_ID.test(accessKeyId))
      throw new AccessKeyAccountError(accessKeyId, 'not an access key id');
    const res = await this.sts.send(new GetAccessKeyInfoCommand({ AccessKeyId: accessKeyId }));
    if (!res.Account || !ACCOUNT_ID.test(res.Account)) {
      throw new AccessKeyAccountError(accessKeyId, 'STS answered without a 12-digit account');
    }
    return res.Account;
  }
}
