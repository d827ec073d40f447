import { type CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';

/**
 * Who signed a short-term Bedrock API key: CloudTrail event history (`LookupEvents`, `AccessKeyId` = the key's
 * access key id) holds the calls made with that access key id, and their `userIdentity.arn` is the principal
 * (an IAM user, or an assumed-role session for `ASIA…` ids). Event history is regional: the key's own region is
 * searched first, then us-east-1 (where global services such as IAM and STS record), over at most a few pages.
 * Only the principal ARN is taken from a record; throttling and other errors propagate (the SDK retries first).
 */

/** The largest page LookupEvents returns. */
const PAGE_SIZE = 50;
/** Pages read per region: enough to find one call with the key, bounded so a busy key cannot stall the batch. */
export const MAX_PAGES = 3;
const HOME_REGION = 'us-east-1';

export type CloudTrailClientProvider = (region: string) => CloudTrailClient;

export class CloudTrailIssuerLookup {
  constructor(private readonly clientFor: CloudTrailClientProvider) {}

  /** The ARN of the principal that made calls with `accessKeyId` between `since` and `until`, or null. */
  async issuerOf(accessKeyId: string, region: string, since: Date, until: Date): Promise<string | null> {
    const regions = region === HOME_REGION ? [region] : [region, HOME_REGION];
    for (const r of regions) {
      const found = await this.searchRegion(this.clientFor(r), accessKeyId, since, until);
      if (found) return found;
    }
    return null;
  }

  private async searchRegion(
    client: CloudTrailClient,
    accessKeyId: string,
    since: Date,
    until: Date,
  ): Promise<string | null> {
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const res = await client.send(
        new LookupEventsCommand({
          LookupAttributes: [{ AttributeKey: 'AccessKeyId', AttributeValue: accessKeyId }],
          StartTime: since,
          EndTime: until,
          MaxResults: PAGE_SIZE,
          NextToken: nextToken,
        }),
      );
      pages += 1;
      for (const e of res.Events ?? []) {
        const arn = principalOf(e.CloudTrailEvent, accessKeyId);
        if (arn) return arn;
      }
      nextToken = res.NextToken;
    } while (nextToken && pages < MAX_PAGES);
    return null;
  }
}

/** `userIdentity.arn` of a history record made with this access key id; null for anything else. */
function principalOf(raw: string | undefined, accessKeyId: string): string | null {
  if (!raw) return null;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  const identity = (json as { userIdentity?: { arn?: unknown; accessKeyId?: unknown } } | null)?.userIdentity;
  if (!identity || typeof identity.arn !== 'string') return null;
  if (identity.accessKeyId !== undefined && identity.accessKeyId !== accessKeyId) return null;
  return identity.arn;
}
