import {
  CloudTrailClient,
  CloudTrailServiceException,
  LookupEventsCommand,
} from '@aws-sdk/client-cloudtrail';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CloudTrailIssuerLookup,
  COMMERCIAL_REGIONS,
  LOOKUP_TIMEOUT_MS,
} from '../../lambda/adapters/cloudtrail-issuers';

const AKID = 'ASIAEXAMPLESIGNER001';
const SIGNER = 'arn:aws:sts::111122223333:assumed-role/ChatbotRuntime/i-0abc1234';
const SINCE = new Date('2026-11-19T21:31:02Z');
const UNTIL = new Date('2026-11-20T10:00:00Z');

/** One client per region, each mocked on its own, and the regions a client was asked for. */
function regionalClients() {
  const clients = new Map<string, CloudTrailClient>();
  const asked: string[] = [];
  const clientFor = (region: string): CloudTrailClient => {
    asked.push(region);
    let c = clients.get(region);
    if (!c) {
      c = new CloudTrailClient({ region });
      clients.set(region, c);
    }
    return c;
  };
  const mockOf = (region: string) => mockClient(clientFor(region));
  return { clientFor, asked, mockOf, reset: () => asked.splice(0) };
}

function signedBy(arn: string) {
  return { Events: [{ CloudTrailEvent: JSON.stringify({ userIdentity: { arn, accessKeyId: AKID } }) }] };
}

/** The error the SDK gives for a JSON-protocol call signed for a region the account has not opted in to. */
function regionNotEnabled(): CloudTrailServiceException {
  return new CloudTrailServiceException({
    name: 'UnrecognizedClientException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message: 'The security token included in the request is invalid.',
  });
}

describe('CloudTrailIssuerLookup: which regions are called', () => {
  it('never calls a made-up region, searches us-east-1 only and says why the key region was skipped', async () => {
    // Prepare
    const r = regionalClients();
    const home = r.mockOf('us-east-1');
    r.reset();
    home.on(LookupEventsCommand).resolves({ Events: [] });

    // Act
    const found = await new CloudTrailIssuerLookup(r.clientFor).issuerOf(AKID, 'zz-fake-1', SINCE, UNTIL);

    // Assess
    expect(r.asked).toEqual(['us-east-1']);
    expect(home).toHaveReceivedCommandTimes(LookupEventsCommand, 1);
    expect(found).toEqual({
      issuer: null,
      unknownReason: 'zz-fake-1: not a known AWS commercial region, not called',
    });
  });

  it('still finds a signer recorded in us-east-1 when the key names a made-up region', async () => {
    // Prepare
    const r = regionalClients();
    r.mockOf('us-east-1').on(LookupEventsCommand).resolves(signedBy(SIGNER));

    // Act
    const found = await new CloudTrailIssuerLookup(r.clientFor).issuerOf(AKID, 'eu-fake-9', SINCE, UNTIL);

    // Assess
    expect(found).toEqual({ issuer: SIGNER, unknownReason: null });
  });

  it('knows only commercial-partition regions: not China, GovCloud, the sovereign or ISO partitions', () => {
    // Assess
    for (const r of ['us-east-1', 'eu-west-1', 'ap-southeast-7', 'mx-central-1', 'il-central-1']) {
      expect(COMMERCIAL_REGIONS.has(r)).toBe(true);
    }
    for (const r of ['cn-north-1', 'us-gov-west-1', 'eusc-de-east-1', 'us-iso-east-1', 'zz-fake-1']) {
      expect(COMMERCIAL_REGIONS.has(r)).toBe(false);
    }
  });

  it('searches the key region first, then us-east-1, with no reason when both answered', async () => {
    // Prepare
    const r = regionalClients();
    const key = r.mockOf('eu-west-1');
    const home = r.mockOf('us-east-1');
    r.reset();
    key.on(LookupEventsCommand).resolves({ Events: [] });
    home.on(LookupEventsCommand).resolves({ Events: [] });

    // Act
    const found = await new CloudTrailIssuerLookup(r.clientFor).issuerOf(AKID, 'eu-west-1', SINCE, UNTIL);

    // Assess
    expect(r.asked).toEqual(['eu-west-1', 'us-east-1']);
    expect(key).toHaveReceivedCommandWith(LookupEventsCommand, {
      LookupAttributes: [{ AttributeKey: 'AccessKeyId', AttributeValue: AKID }],
      StartTime: SINCE,
      EndTime: UNTIL,
    });
    expect(found).toEqual({ issuer: null, unknownReason: null });
  });
});

describe('CloudTrailIssuerLookup: a failing region is a reason, never a throw', () => {
  it('an opt-in region the account has not enabled (UnrecognizedClientException): reason, us-east-1 still searched', async () => {
    // Prepare
    const r = regionalClients();
    r.mockOf('ap-southeast-7').on(LookupEventsCommand).rejects(regionNotEnabled());
    const home = r.mockOf('us-east-1');
    home.on(LookupEventsCommand).resolves({ Events: [] });

    // Act
    const found = await new CloudTrailIssuerLookup(r.clientFor).issuerOf(
      AKID,
      'ap-southeast-7',
      SINCE,
      UNTIL,
    );

    // Assess
    expect(home).toHaveReceivedCommandTimes(LookupEventsCommand, 1);
    expect(found.issuer).toBeNull();
    expect(found.unknownReason).toBe(
      'ap-southeast-7: credentials not accepted in this region: an opt-in region the account has not enabled? (UnrecognizedClientException)',
    );
    expect(found.unknownReason).not.toContain('security token');
  });

  it('an SCP denying the region: the signer found in us-east-1 is still returned', async () => {
    // Prepare
    const r = regionalClients();
    r.mockOf('eu-central-2')
      .on(LookupEventsCommand)
      .rejects(
        new CloudTrailServiceException({
          name: 'AccessDeniedException',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
          message: 'explicit deny in a service control policy',
        }),
      );
    r.mockOf('us-east-1').on(LookupEventsCommand).resolves(signedBy(SIGNER));

    // Act
    const found = await new CloudTrailIssuerLookup(r.clientFor).issuerOf(AKID, 'eu-central-2', SINCE, UNTIL);

    // Assess
    expect(found).toEqual({ issuer: SIGNER, unknownReason: null });
  });

  it('both regions failing: both reasons, in order', async () => {
    // Prepare
    const r = regionalClients();
    r.mockOf('eu-central-2')
      .on(LookupEventsCommand)
      .rejects(
        new CloudTrailServiceException({
          name: 'AccessDeniedException',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
          message: 'denied',
        }),
      );
    r.mockOf('us-east-1').on(LookupEventsCommand).rejects(new Error('socket hang up'));

    // Act
    const found = await new CloudTrailIssuerLookup(r.clientFor).issuerOf(AKID, 'eu-central-2', SINCE, UNTIL);

    // Assess
    expect(found).toEqual({
      issuer: null,
      unknownReason:
        'eu-central-2: access denied (an SCP or policy denying the region?) (AccessDeniedException); us-east-1: lookup failed (Error)',
    });
  });

  it('a call that never answers is abandoned after the timeout and its request aborted', async () => {
    // Prepare: eu-west-1 hangs (a client that records the abort signal it was given), us-east-1 knows the signer
    let signal: AbortSignal | undefined;
    const hanging = {
      send: (_command: LookupEventsCommand, options?: { abortSignal?: AbortSignal }) => {
        signal = options?.abortSignal;
        return new Promise(() => {});
      },
    } as unknown as CloudTrailClient;
    const home = new CloudTrailClient({ region: 'us-east-1' });
    mockClient(home).on(LookupEventsCommand).resolves(signedBy(SIGNER));
    const clientFor = (region: string) => (region === 'eu-west-1' ? hanging : home);
    const started = Date.now();

    // Act
    const found = await new CloudTrailIssuerLookup(clientFor, { timeoutMs: 50 }).issuerOf(
      AKID,
      'eu-west-1',
      SINCE,
      UNTIL,
    );

    // Assess
    expect(Date.now() - started).toBeLessThan(2000);
    expect(signal?.aborted).toBe(true);
    expect(found).toEqual({ issuer: SIGNER, unknownReason: null });
  });

  it('a timed-out region with nothing found elsewhere says it timed out; the default timeout is a few seconds', async () => {
    // Prepare
    const r = regionalClients();
    r.mockOf('us-east-1')
      .on(LookupEventsCommand)
      .callsFake(() => new Promise(() => {}));

    // Act
    const found = await new CloudTrailIssuerLookup(r.clientFor, { timeoutMs: 20 }).issuerOf(
      AKID,
      'us-east-1',
      SINCE,
      UNTIL,
    );

    // Assess
    expect(found).toEqual({ issuer: null, unknownReason: 'us-east-1: timed out after 20 ms' });
    expect(LOOKUP_TIMEOUT_MS).toBeGreaterThanOrEqual(1000);
    expect(LOOKUP_TIMEOUT_MS).toBeLessThanOrEqual(5000);
  });
});
