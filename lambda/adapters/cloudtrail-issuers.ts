import {
  CloudTrailClient,
  LookupEventsCommand,
  type LookupEventsCommandOutput,
} from '@aws-sdk/client-cloudtrail';
import { SDK_MAX_ATTEMPTS } from './clients';

/**
 * Who signed a short-term Bedrock API key: CloudTrail event history (`LookupEvents`, `AccessKeyId` = the key's
 * access key id) holds the calls made with that access key id, and their `userIdentity.arn` is the principal
 * (an IAM user, or an assumed-role session for `ASIA…` ids). Event history is regional: the key's own region is
 * searched first, then us-east-1 (where global services such as IAM and STS record), over at most a few pages.
 * Only the principal ARN is taken from a record.
 *
 * The region comes from the found string, which anyone writing to a subscribed log can forge: only regions of
 * the AWS commercial partition are called (a made-up `zz-fake-1` is not), each call has a timeout, and a failed
 * region (an opt-in region the account has not enabled, an SCP denying it, throttling past the SDK's retries,
 * the network) makes the signer unknown with a reason instead of failing the batch: one finding's lookup never
 * decides the fate of the others.
 */

/** The largest page LookupEvents returns. */
const PAGE_SIZE = 50;
/** Pages read per region: enough to find one call with the key, bounded so a busy key cannot stall the batch. */
export const MAX_PAGES = 3;
/** Per call (SDK retries included): event history answers in well under a second when the region works. */
export const LOOKUP_TIMEOUT_MS = 3000;
const HOME_REGION = 'us-east-1';
/** Echoed region names and error names are cut to this length (the region is attacker-controlled text). */
const ECHO_MAX = 32;

/**
 * The regions of the `aws` (commercial) partition, as listed by the AWS SDK's endpoint partitions
 * (`partitionsInfo`, partition id `aws`, in `@aws-sdk/core` 3.981). Other partitions (`aws-cn`, `aws-us-gov`,
 * `aws-eusc`, the ISO partitions) cannot be reached with this account's credentials. A region AWS opens later is
 * not called until it is added here: its keys' signers are then reported unknown, with the reason.
 */
export const COMMERCIAL_REGIONS: ReadonlySet<string> = new Set([
  'af-south-1',
  'ap-east-1',
  'ap-east-2',
  'ap-northeast-1',
  'ap-northeast-2',
  'ap-northeast-3',
  'ap-south-1',
  'ap-south-2',
  'ap-southeast-1',
  'ap-southeast-2',
  'ap-southeast-3',
  'ap-southeast-4',
  'ap-southeast-5',
  'ap-southeast-6',
  'ap-southeast-7',
  'ca-central-1',
  'ca-west-1',
  'eu-central-1',
  'eu-central-2',
  'eu-north-1',
  'eu-south-1',
  'eu-south-2',
  'eu-west-1',
  'eu-west-2',
  'eu-west-3',
  'il-central-1',
  'me-central-1',
  'me-south-1',
  'me-west-1',
  'mx-central-1',
  'sa-east-1',
  'sa-west-1',
  'us-east-1',
  'us-east-2',
  'us-west-1',
  'us-west-2',
]);

export type CloudTrailClientProvider = (region: string) => CloudTrailClient;

/** Temporary credentials of another account (organization mode: its member role's, member-access.ts). */
export type AccountCredentials = () => Promise<{
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}>;

/**
 * CloudTrail clients reading another account's event history with that account's credentials (organization mode: a
 * short-term key signed in a member account is traced there, through its member role), one per region.
 */
export function cloudTrailClientsWith(credentials: AccountCredentials): CloudTrailClientProvider {
  const clients = new Map<string, CloudTrailClient>();
  return (region) => {
    let c = clients.get(region);
    if (!c) {
      c = new CloudTrailClient({ region, maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard', credentials });
      clients.set(region, c);
    }
    return c;
  };
}

/** What a lookup found: the signer's ARN, or null with why (null reason: every region answered, none knew it). */
export interface IssuerLookup {
  issuer: string | null;
  /** Why a region was not searched or its search failed, when the signer was not found; else null. */
  unknownReason: string | null;
}

/** A LookupEvents call that did not answer within its timeout. */
export class IssuerLookupTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`LookupEvents did not answer within ${timeoutMs} ms`);
    this.name = 'IssuerLookupTimeoutError';
  }
}

export interface CloudTrailIssuerLookupOptions {
  /** @default LOOKUP_TIMEOUT_MS */
  readonly timeoutMs?: number;
}

export class CloudTrailIssuerLookup {
  private readonly timeoutMs: number;

  constructor(
    private readonly clientFor: CloudTrailClientProvider,
    options: CloudTrailIssuerLookupOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? LOOKUP_TIMEOUT_MS;
  }

  /**
   * The ARN of the principal that made calls with `accessKeyId` between `since` and `until`, or null with the
   * reason some region could not be searched. Never throws: a region's failure is part of the answer.
   */
  async issuerOf(accessKeyId: string, region: string, since: Date, until: Date): Promise<IssuerLookup> {
    const problems: string[] = [];
    const regions: string[] = [];
    if (COMMERCIAL_REGIONS.has(region)) regions.push(region);
    else problems.push(`${region.slice(0, ECHO_MAX)}: not a known AWS commercial region, not called`);
    if (region !== HOME_REGION) regions.push(HOME_REGION);
    for (const r of regions) {
      try {
        const found = await this.searchRegion(this.clientFor(r), accessKeyId, since, until);
        if (found) return { issuer: found, unknownReason: null };
      } catch (err: unknown) {
        problems.push(`${r}: ${describeFailure(err)}`);
      }
    }
    return { issuer: null, unknownReason: problems.length > 0 ? problems.join('; ') : null };
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
      const res = await this.lookupEvents(
        client,
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

  /** One call, abandoned (and its request aborted) after the timeout. */
  private async lookupEvents(
    client: CloudTrailClient,
    command: LookupEventsCommand,
  ): Promise<LookupEventsCommandOutput> {
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        reject(new IssuerLookupTimeoutError(this.timeoutMs));
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([client.send(command, { abortSignal: abort.signal }), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A short, fixed-vocabulary reason (no SDK message: it is not needed and is not ours to echo). */
function describeFailure(err: unknown): string {
  if (err instanceof IssuerLookupTimeoutError) return `timed out after ${err.timeoutMs} ms`;
  const name = (err instanceof Error ? err.name : 'unknown error').slice(0, ECHO_MAX);
  if (name === 'UnrecognizedClientException' || name === 'InvalidClientTokenId') {
    return `credentials not accepted in this region: an opt-in region the account has not enabled? (${name})`;
  }
  if (/AccessDenied/.test(name)) return `access denied (an SCP or policy denying the region?) (${name})`;
  return `lookup failed (${name})`;
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
