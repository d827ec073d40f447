import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient, QueryCommand, ThrottlingException } from '@aws-sdk/client-dynamodb';
import { IAMClient, ListServiceSpecificCredentialsCommand } from '@aws-sdk/client-iam';
import { AccessDeniedException } from '@aws-sdk/client-organizations';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { ExpiredTokenException } from '@aws-sdk/client-sts';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { documentClient } from '../../lambda/adapters/document-client';
import {
  type AwsCallContext,
  describeAwsFailure,
  EXIT_AWS,
  EXIT_CODES,
  exitCodesHelp,
  explainAwsFailure,
  tagAwsErrors,
} from '../../lambda/cli/aws-errors';
import { awsProblem } from '../../lambda/cli/inventory';
import {
  dnsFailure,
  fakeHandler,
  jsonError,
  queryError,
  TEST_CREDENTIALS,
  withoutCredentials,
} from './aws-fakes';
import { removeTempDirs } from './helpers';

afterAll(removeTempDirs);

const IAM_CTX: AwsCallContext = {
  command: 'inventory',
  service: 'IAM',
  operation: 'ListServiceSpecificCredentials',
  region: 'us-east-1',
};

/** What a real client's call throws. */
async function thrown(send: () => Promise<unknown>): Promise<unknown> {
  try {
    await send();
  } catch (err) {
    return err;
  }
  throw new Error('the call did not fail');
}

/** A client's config answering every request with `answer` (no network): signed with test keys, in `region`. */
function answering(answer: Parameters<typeof fakeHandler>[0], region = 'us-east-1') {
  return { region, credentials: TEST_CREDENTIALS, requestHandler: fakeHandler(answer) };
}

/** What a Scan of keyguard-decisions (document client) throws when DynamoDB in `region` has no such table. */
function missingTableScan(region: string): Promise<unknown> {
  const ddb = tagAwsErrors(
    new DynamoDBClient(
      answering(jsonError(400, 'ResourceNotFoundException', 'Requested resource not found'), region),
    ),
  );
  return thrown(() => documentClient(ddb).send(new ScanCommand({ TableName: 'keyguard-decisions' })));
}

function oneLine(line: string): void {
  expect(line.endsWith('\n')).toBe(true);
  expect(line.slice(0, -1)).not.toContain('\n');
  expect(line.startsWith('keyguard: ')).toBe(true);
}

describe('describeAwsFailure: real SDK errors', () => {
  it('no credentials: the real default chain with empty config files names the call and the default chain', async () => {
    // Prepare: a real IAM client, tagged, with nothing to sign with.
    const err = await withoutCredentials(() =>
      thrown(() =>
        tagAwsErrors(new IAMClient({ region: 'us-east-1' })).send(
          new ListServiceSpecificCredentialsCommand({}),
        ),
      ),
    );
    // Act
    const f = await explainAwsFailure(err, { ...IAM_CTX, operation: 'ignored: the tag names it' });
    // Assess
    expect(f?.kind).toBe('no-credentials');
    expect(f?.exitCode).toBe(EXIT_AWS);
    oneLine(f?.line ?? '');
    expect(f?.line).toContain(
      'keyguard: inventory: IAM ListServiceSpecificCredentials (region us-east-1, default credential chain): no AWS credentials found',
    );
    expect(f?.line).toContain('aws sso login');
  });

  it('unknown profile: the real provider for a profile missing from the config files says the profile is unknown', async () => {
    const { kind, line } = await withoutCredentials(async () => {
      const err = await thrown(() => defaultProvider({ profile: 'secuirty' })());
      return (await explainAwsFailure(err, { ...IAM_CTX, profile: 'secuirty' })) ?? { kind: null, line: '' };
    }, '[profile security]\nregion = us-east-1\n');
    expect(kind).toBe('unknown-profile');
    oneLine(line);
    expect(line).toContain(
      '(region us-east-1, profile secuirty): profile secuirty is not in the AWS config files',
    );
    expect(line).toContain('aws configure list-profiles');
  });

  it("unknown profile of a client: the tag names the client's own profile and region, whatever the command assumed", async () => {
    const f = await withoutCredentials(async () => {
      const iam = tagAwsErrors(new IAMClient({ region: 'us-east-1', profile: 'secuirty' }));
      const err = await thrown(() => iam.send(new ListServiceSpecificCredentialsCommand({})));
      return explainAwsFailure(err, { ...IAM_CTX, region: 'eu-west-3' });
    });
    expect(f?.kind).toBe('unknown-profile');
    expect(f?.line).toContain(
      'IAM ListServiceSpecificCredentials (region us-east-1, profile secuirty): profile secuirty is not in',
    );
  });

  it("wrong region from the client itself: a table missing in the client's region eu-west-1 suggests --region", async () => {
    const err = await missingTableScan('eu-west-1');
    const f = describeAwsFailure(err, {
      service: 'DynamoDB',
      operation: 'Scan',
      region: 'us-east-1',
      resource: 'table keyguard-decisions',
    });
    expect(f?.kind).toBe('wrong-region');
    expect(f?.line).toContain(
      'DynamoDB Scan (region eu-west-1, default credential chain): table keyguard-decisions not found in eu-west-1',
    );
  });

  it("S3's 301 PermanentRedirect is a wrong region; without the region header the line says how to find it", async () => {
    const s3 = tagAwsErrors(
      new S3Client(
        answering({
          status: 301,
          body: '<Error><Code>PermanentRedirect</Code><Message>Use the specified endpoint.</Message></Error>',
        }),
      ),
    );
    const err = await thrown(() => s3.send(new ListObjectsV2Command({ Bucket: 'ci-logs' })));
    const f = describeAwsFailure(err, {
      command: 'scan',
      service: 'S3',
      operation: 'ListObjectsV2',
      region: 'us-east-1',
      resource: 'bucket ci-logs',
    });
    expect(f?.kind).toBe('wrong-region');
    expect(f?.exitCode).toBe(EXIT_AWS);
    expect(f?.line).toContain(
      'S3 ListObjectsV2 (region us-east-1, default credential chain): bucket ci-logs is not in us-east-1 (PermanentRedirect',
    );
    expect(f?.line).toContain(
      "Pass --region with the bucket's region (aws s3api get-bucket-location --bucket NAME).",
    );
  });

  it('a profile that exists but holds no credentials is "no credentials", not unknown', async () => {
    const kind = await withoutCredentials(async () => {
      const err = await thrown(() => defaultProvider({ profile: 'security' })());
      return (await explainAwsFailure(err, { ...IAM_CTX, profile: 'security' }))?.kind;
    }, '[profile security]\nregion = us-east-1\n');
    expect(kind).toBe('no-credentials');
  });

  it('access denied: IAM answers AccessDenied (deserialised by the SDK) and the IAM action is named', async () => {
    const iam = tagAwsErrors(
      new IAMClient(
        answering({
          ...queryError(
            'AccessDenied',
            'User: arn:aws:iam::111122223333:user/bob is not authorized to perform: iam:ListServiceSpecificCredentials',
          ),
          status: 403,
        }),
      ),
    );
    const err = await thrown(() => iam.send(new ListServiceSpecificCredentialsCommand({})));
    const f = describeAwsFailure(err, { ...IAM_CTX, service: 'X', operation: 'Y', profile: 'security' });
    expect(f?.kind).toBe('access-denied');
    oneLine(f?.line ?? '');
    expect(f?.line).toBe(
      'keyguard: inventory: IAM ListServiceSpecificCredentials (region us-east-1, profile security): access denied ' +
        '(AccessDenied: User: arn:aws:iam::111122223333:user/bob is not authorized to perform: ' +
        'iam:ListServiceSpecificCredentials). Grant iam:ListServiceSpecificCredentials to the caller, or use a ' +
        'profile that has it.\n',
    );
  });

  it('access denied: an Organizations AccessDeniedException, with the permissions the caller names', () => {
    const err = new AccessDeniedException({
      message: 'You don’t have permissions',
      $metadata: { httpStatusCode: 400 },
    });
    const f = describeAwsFailure(err, {
      command: 'inventory --org',
      service: 'Organizations',
      operation: 'ListChildren',
      region: 'us-east-1',
      permissions: 'organizations:ListChildren and organizations:ListAccountsForParent',
    });
    expect(f?.kind).toBe('access-denied');
    expect(f?.line).toContain(
      'Organizations ListChildren (region us-east-1, default credential chain): access denied',
    );
    expect(f?.line).toContain(
      'Grant organizations:ListChildren to the caller, or use a profile that has it (inventory --org needs organizations:ListChildren and organizations:ListAccountsForParent)',
    );
  });

  it.each([
    [
      'ExpiredTokenException',
      new ExpiredTokenException({
        message: 'The security token included in the request is expired',
        $metadata: {},
      }),
    ],
    [
      'InvalidClientTokenId',
      Object.assign(new Error('The security token included in the request is invalid'), {
        name: 'InvalidClientTokenId',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
      }),
    ],
    [
      'UnrecognizedClientException',
      Object.assign(new Error('The security token included in the request is invalid.'), {
        name: 'UnrecognizedClientException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      }),
    ],
    [
      'SignatureDoesNotMatch',
      Object.assign(new Error('The request signature we calculated does not match'), {
        name: 'SignatureDoesNotMatch',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
      }),
    ],
  ])('rejected credentials: %s', (name, err) => {
    const f = describeAwsFailure(err, { ...IAM_CTX, profile: 'dev' });
    expect(f?.kind).toBe('rejected-credentials');
    expect(f?.line).toContain(`AWS rejected the credentials: expired or invalid (${name}:`);
    expect(f?.line).toContain('aws sso login --profile dev');
  });

  it('an expired SSO session is rejected credentials, with the sso login to run', () => {
    const err = Object.assign(
      new Error(
        'The SSO session associated with this profile has expired or is otherwise invalid. To refresh this SSO ' +
          'session run aws sso login with the corresponding profile.',
      ),
      { name: 'TokenProviderError' },
    );
    const f = describeAwsFailure(err, { ...IAM_CTX, profile: 'security' });
    expect(f?.kind).toBe('rejected-credentials');
    expect(f?.line).toContain('aws sso login --profile security');
  });

  it("a message of the CLI's own that quotes a credentials failure is not read as one", () => {
    const quoted = Object.assign(
      new Error('CloudFormation DescribeStacks (...): Could not load credentials from any providers'),
      {
        name: 'StackLookupError',
      },
    );
    expect(describeAwsFailure(quoted, IAM_CTX)).toBeNull();
  });

  it('missing stack: CloudFormation ValidationError "Stack with id X does not exist" in the deploy region', async () => {
    const cfn = tagAwsErrors(
      new CloudFormationClient(
        answering(queryError('ValidationError', 'Stack with id BedrockKeyGuard does not exist')),
      ),
    );
    const err = await thrown(() => cfn.send(new DescribeStacksCommand({ StackName: 'BedrockKeyGuard' })));
    const f = describeAwsFailure(err, {
      command: 'audit',
      service: 'CloudFormation',
      operation: 'DescribeStacks',
      region: 'us-east-1',
      resource: 'stack BedrockKeyGuard',
    });
    expect(f?.kind).toBe('stack-not-found');
    expect(f?.line).toContain(
      'CloudFormation DescribeStacks (region us-east-1, default credential chain): stack BedrockKeyGuard does not exist in us-east-1',
    );
    expect(f?.line).toContain('--stack NAME');
  });

  it('wrong region: the same missing stack asked for in another region suggests --region us-east-1', () => {
    const err = Object.assign(new Error('Stack with id BedrockKeyGuard does not exist'), {
      name: 'ValidationError',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });
    const f = describeAwsFailure(err, {
      service: 'CloudFormation',
      operation: 'DescribeStacks',
      region: 'eu-west-1',
      resource: 'stack BedrockKeyGuard',
    });
    expect(f?.kind).toBe('wrong-region');
    expect(f?.line).toContain('stack BedrockKeyGuard not found in eu-west-1');
    expect(f?.line).toContain('pass --region us-east-1');
  });

  it('missing table: DynamoDB ResourceNotFoundException through the document client (tagged on its DynamoDB client)', async () => {
    const err = await missingTableScan('us-east-1');
    const f = describeAwsFailure(err, {
      command: 'report',
      service: 'DynamoDB',
      operation: 'read',
      region: 'us-east-1',
      // no resource: the request's TableName names it
    });
    expect(f?.kind).toBe('table-not-found');
    expect(f?.line).toContain(
      'DynamoDB Scan (region us-east-1, default credential chain): table keyguard-decisions does not exist in us-east-1',
    );

    // The client's own region is named, not the command's assumption.
    const assumed = describeAwsFailure(err, {
      service: 'DynamoDB',
      operation: 'Scan',
      region: 'eu-central-1',
    });
    expect(assumed?.kind).toBe('table-not-found');
  });

  it('throttled after the retries: the attempts are named', () => {
    const err = new ThrottlingException({
      message: 'Rate exceeded',
      $metadata: { attempts: 6, httpStatusCode: 400 },
    });
    const f = describeAwsFailure(err, { service: 'DynamoDB', operation: 'Query', region: 'us-east-1' });
    expect(f?.kind).toBe('throttled');
    expect(f?.line).toContain('throttled by AWS after 6 attempts (ThrottlingException: Rate exceeded)');
  });

  it('network unreachable: the DNS failure under the real client names the endpoint', async () => {
    const host = 'dynamodb.us-east-1.amazonaws.com';
    const ddb = tagAwsErrors(
      new DynamoDBClient({
        region: 'us-east-1',
        maxAttempts: 1,
        credentials: TEST_CREDENTIALS,
        requestHandler: fakeHandler(dnsFailure(host)),
      }),
    );
    const err = await thrown(() =>
      ddb.send(new QueryCommand({ TableName: 't', KeyConditionExpression: 'a = :a' })),
    );
    const f = describeAwsFailure(err, {
      command: 'audit',
      service: 'DynamoDB',
      operation: 'x',
      region: 'us-east-1',
    });
    expect(f?.kind).toBe('network');
    expect(f?.exitCode).toBe(EXIT_AWS);
    expect(f?.line).toContain(
      `DynamoDB Query (region us-east-1, default credential chain): could not reach ${host} (ENOTFOUND`,
    );
  });

  it('network: a connection refused under fetch (the approvals function URL) names the endpoint from the cause', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), {
      code: 'ECONNREFUSED',
      address: '127.0.0.1',
      port: 9,
    });
    const err = new Error('could not reach the approval function', { cause });
    const f = describeAwsFailure(err, {
      service: 'Lambda function URL',
      operation: 'approve',
      region: 'us-east-1',
    });
    expect(f?.kind).toBe('network');
    expect(f?.line).toContain('could not reach 127.0.0.1:9 (ECONNREFUSED');
  });

  it('an unrecognised AWS error is still one AWS line with the same exit code; a bug is not an AWS failure', () => {
    const err = Object.assign(new Error('Internal'), {
      name: 'InternalServerError',
      $fault: 'server',
      $metadata: { httpStatusCode: 500 },
    });
    expect(describeAwsFailure(err, IAM_CTX)).toMatchObject({ kind: 'aws-error', exitCode: EXIT_AWS });
    expect(describeAwsFailure(new TypeError('x is undefined'), IAM_CTX)).toBeNull();
  });

  it('the line holds no key material and no control characters from the message', () => {
    const key = `ABSK${Buffer.from('BedrockAPIKey-abcd-at-111122223333:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa').toString('base64')}`;
    const err = Object.assign(new Error(`denied for ${key}\n\u001b[2Jforged line`), {
      name: 'AccessDenied',
      $fault: 'client',
      $metadata: {},
    });
    const f = describeAwsFailure(err, IAM_CTX);
    oneLine(f?.line ?? '');
    expect(f?.line).not.toContain(key);
    expect(f?.line).not.toContain('\u001b');
  });
});

describe('the exit-code table', () => {
  it('every help block carries the shared meaning of 0, 1 and 2 word for word, plus the command’s own', () => {
    const scan = exitCodesHelp({ 1: 'or keys found' });
    const org = exitCodesHelp({ 3: 'some accounts could not be read' });
    for (const text of [scan, org, exitCodesHelp()]) {
      const flat = text.replace(/\n\s+/g, ' ');
      for (const { code, meaning } of EXIT_CODES) expect(flat).toContain(`${code}  ${meaning}`);
    }
    expect(scan.replace(/\n\s+/g, ' ')).toContain('reported on stderr; or keys found');
    expect(org).toContain('  3  some accounts could not be read');
    for (const l of org.split('\n')) expect(l.length).toBeLessThanOrEqual(110);
  });
});

describe("inventory --org's per-account reasons (awsProblem) read errors as aws-errors does", () => {
  it.each([
    ['MissingCredentialsError', 'no AWS credentials found'],
    ['InvalidAccessKeyId', 'AWS rejected the credentials (InvalidAccessKeyId'],
    ['InvalidSignatureException', 'AWS rejected the credentials (InvalidSignatureException'],
    ['InvalidToken', 'AWS rejected the credentials (InvalidToken'],
    ['AuthorizationError', 'access denied'],
  ])('%s', (name, reason) => {
    const err = Object.assign(new Error('the message'), { name });
    expect(awsProblem(err)).toContain(reason);
  });
});
