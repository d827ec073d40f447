import { type Prng, WeightedChoice } from './prng';

/**
 * Real-shaped CloudTrail records for benchmarks: the everyday traffic of a busy account (S3 and DynamoDB data
 * events, KMS, STS, EC2, Lambda, Bedrock inference, read-only IAM calls) and, rarely, the IAM events about
 * Bedrock API keys that keyguard acts on. Shapes follow CloudTrail's log-file format (lower camel case
 * members, `eventVersion` 1.10) and shared/docs/bedrock-api-keys.md for the IAM key events. No record holds
 * key material.
 */

export type CloudTrailJson = Record<string, unknown>;

export const BENCH_ACCOUNT = '111122223333';
/** Where IAM, a global service, records its events (and the home region of the account's workloads). */
export const HOME_REGION = 'us-east-1';
const TLS = 'TLSv1.3';
const CIPHER = 'TLS_AES_128_GCM_SHA256';
const CLI_AGENT = 'aws-cli/2.27.0 md/awscrt#0.26.1 ua/2.1 os/linux#6.1 md/arch#x86_64 lang/python#3.13.3';
const SDK_AGENTS = [
  'aws-sdk-js/3.1169.0 ua/2.1 os/linux#5.10.240-258.930.amzn2.x86_64 lang/js md/nodejs#22.20.0 api/s3#3.1169.0 m/E,N',
  'Boto3/1.40.12 md/Botocore#1.40.12 ua/2.1 os/linux#6.1.147-172.266.amzn2023.aarch64 md/arch#aarch64 lang/python#3.12.11 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.40.12',
  'aws-sdk-java/2.31.50 Linux/5.10.240-258.930.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/21.0.8+9-LTS Java/21.0.8 vendor/Amazon.com_Inc. exec-env/AWS_ECS_FARGATE io/sync http/Apache cfg/retry-mode/standard',
] as const;
const BUCKETS = [
  'acme-datalake-raw',
  'acme-datalake-curated',
  'acme-app-assets',
  'acme-ml-artifacts',
] as const;
const TABLES = ['orders', 'sessions', 'inventory', 'feature-flags'] as const;
const FUNCTIONS = ['order-ingest', 'thumbnailer', 'nightly-report', 'rag-retriever'] as const;
const MODELS = [
  'anthropic.claude-sonnet-4-5-20250929-v1:0',
  'us.anthropic.claude-haiku-4-5-20251001-v1:0',
  'amazon.nova-pro-v1:0',
  'meta.llama3-3-70b-instruct-v1:0',
] as const;
const INSTANCE_TYPES = ['m7g.large', 'c7i.xlarge', 't4g.medium', 'r7g.2xlarge'] as const;

/** CloudTrail's `eventTime` form: ISO-8601 in UTC without milliseconds. */
export function trailTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** IAM's text date form in CloudTrail, e.g. `Nov 20, 2026, 9:31:02 AM` (or without the comma after the year). */
export function iamTextDate(ms: number, commaAfterYear: boolean): string {
  const d = new Date(ms);
  const h = d.getUTCHours();
  const hh = h % 12 === 0 ? 12 : h % 12;
  const mm = String(d.getUTCMinutes()).padStart(2, '0');
  const ss = String(d.getUTCSeconds()).padStart(2, '0');
  const year = `${d.getUTCFullYear()}${commaAfterYear ? ',' : ''}`;
  return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}, ${year} ${hh}:${mm}:${ss} ${h < 12 ? 'AM' : 'PM'}`;
}

/** One IAM event of the key scenario and what `keyguard replay` should make of it. */
export interface PlantedKeyEvent {
  record: CloudTrailJson;
  /** Decisions replay prints for it, given the events before it. */
  decisions: number;
  /**
   * Whether replay counts it as relevant: false for a CodeCommit credential and a failed call, which have the
   * right eventSource and eventName (a jq filter on those selects them) but change no Bedrock key.
   */
  relevant: boolean;
}

interface Identity {
  json: CloudTrailJson;
  /** What a caller would see as its ARN, for error messages. */
  arn: string;
  sourceIp: string;
  userAgent: string;
}

type Template = (rng: Prng, at: number, region: string) => CloudTrailJson;

/** Generates records; one instance per archive (or data set) so identities stay stable within it. */
export class RecordFactory {
  private readonly roles: Identity[];
  private readonly users: Identity[];
  private readonly services: Identity[];
  /** The mix in us-east-1, where IAM (a global service) records its calls. */
  private readonly global: WeightedChoice<Template>;
  /** The mix in every other region: the same without IAM. */
  private readonly regional: WeightedChoice<Template>;
  private readonly keyEvents = new KeyEventScenario();

  constructor(private readonly rng: Prng) {
    this.roles = [
      'order-ingest-role',
      'etl-glue-role',
      'app-ecs-task',
      'rag-retriever-role',
      'ci-deployer',
    ].map((role) => this.assumedRole(role, rng.pick(['i-0', 'task-', 'sess-']) + rng.hex(16)));
    this.users = ['alice-admin', 'bob', 'carol', 'reporting-bot'].map((u) => this.iamUser(u));
    this.services = ['lambda.amazonaws.com', 's3.amazonaws.com', 'ec2.amazonaws.com'].map((s) => ({
      json: { type: 'AWSService', invokedBy: s },
      arn: s,
      sourceIp: s,
      userAgent: s,
    }));
    const regional: Array<readonly [Template, number]> = [
      [(r, at, region) => this.s3Object(r, at, region, 'GetObject'), 22],
      [(r, at, region) => this.s3Object(r, at, region, 'PutObject'), 9],
      [(r, at, region) => this.s3Object(r, at, region, 'HeadObject'), 5],
      [(r, at, region) => this.kms(r, at, region, 'Decrypt'), 12],
      [(r, at, region) => this.kms(r, at, region, 'GenerateDataKey'), 5],
      [(r, at, region) => this.assumeRole(r, at, region), 9],
      [(r, at, region) => this.dynamo(r, at, region), 9],
      [(r, at, region) => this.lambdaInvoke(r, at, region), 5],
      [(r, at, region) => this.bedrockInvoke(r, at, region), 5],
      [(r, at) => this.describeInstances(r, at), 5],
      [(r, at, region) => this.runInstances(r, at, region), 0.5],
      [(r, at) => this.logs(r, at), 3],
      [(r, at, region) => this.secret(r, at, region), 2],
      [(r, at) => this.callerIdentity(r, at), 2],
    ];
    this.regional = new WeightedChoice<Template>(regional);
    // IAM is global: its calls are recorded in us-east-1 only, so read-only IAM noise appears only there.
    this.global = new WeightedChoice<Template>([...regional, [(r, at) => this.iamRead(r, at), 5]]);
  }

  /**
   * One record of everyday traffic (never about Bedrock keys) in `region`. `rng` defaults to the factory's
   * own; a generator that builds files in parallel passes one seeded per file, so each file's content is the
   * same whichever worker builds it (identities still come from the factory's seed).
   */
  backgroundRecord(at: number, region: string = HOME_REGION, rng: Prng = this.rng): CloudTrailJson {
    const record = (region === HOME_REGION ? this.global : this.regional).pick(rng)(rng, at, region);
    // Assigned, not spread: the member keeps its place in CloudTrail's field order.
    record.awsRegion = region;
    return record;
  }

  /**
   * The next IAM event of the Bedrock-key scenario (a fixed cycle covering creation with and without
   * `credentialAgeDays`, a console key, tagging, deactivation, deletion, a CodeCommit credential and a failed
   * call), with how many decisions `keyguard replay` should print for it.
   */
  nextKeyEvent(at: number): PlantedKeyEvent {
    return this.keyEvents.next(this, this.rng, at);
  }

  // --- identities ------------------------------------------------------------------------------------------

  private iamUser(name: string): Identity {
    const arn = `arn:aws:iam::${BENCH_ACCOUNT}:user/${name}`;
    return {
      json: {
        type: 'IAMUser',
        principalId: `AIDA${this.rng.upperAlnum(17)}`,
        arn,
        accountId: BENCH_ACCOUNT,
        accessKeyId: `AKIA${this.rng.upperAlnum(16)}`,
        userName: name,
      },
      arn,
      sourceIp: `203.0.113.${this.rng.between(2, 250)}`,
      userAgent: CLI_AGENT,
    };
  }

  private assumedRole(role: string, session: string): Identity {
    const roleId = `AROA${this.rng.upperAlnum(17)}`;
    const arn = `arn:aws:sts::${BENCH_ACCOUNT}:assumed-role/${role}/${session}`;
    return {
      json: {
        type: 'AssumedRole',
        principalId: `${roleId}:${session}`,
        arn,
        accountId: BENCH_ACCOUNT,
        accessKeyId: `ASIA${this.rng.upperAlnum(16)}`,
        sessionContext: {
          sessionIssuer: {
            type: 'Role',
            principalId: roleId,
            arn: `arn:aws:iam::${BENCH_ACCOUNT}:role/${role}`,
            accountId: BENCH_ACCOUNT,
            userName: role,
          },
          attributes: { creationDate: '2026-11-01T00:00:00Z', mfaAuthenticated: 'false' },
          ec2RoleDelivery: '2.0',
        },
      },
      arn,
      sourceIp: `10.0.${this.rng.between(0, 63)}.${this.rng.between(2, 250)}`,
      userAgent: this.rng.pick(SDK_AGENTS),
    };
  }

  /** Admin identity used for IAM key events. */
  adminIdentity(rng: Prng): Identity {
    return rng.chance(0.5) ? (this.users[0] as Identity) : rng.pick(this.users);
  }

  private caller(rng: Prng): Identity {
    return rng.chance(0.8) ? rng.pick(this.roles) : rng.pick(this.users);
  }

  // --- the common envelope ---------------------------------------------------------------------------------

  /** The fields every record has, in CloudTrail's order; `extra` overrides and adds. */
  record(
    rng: Prng,
    at: number,
    who: Identity,
    eventSource: string,
    eventName: string,
    extra: CloudTrailJson,
    management = true,
    mayFail = management,
  ): CloudTrailJson {
    const rec: CloudTrailJson = {
      eventVersion: '1.10',
      userIdentity: who.json,
      eventTime: trailTime(at),
      eventSource,
      eventName,
      awsRegion: HOME_REGION,
      sourceIPAddress: who.sourceIp,
      userAgent: who.userAgent,
      requestParameters: null,
      responseElements: null,
      requestID: rng.uuid(),
      eventID: rng.uuid(),
      readOnly: true,
      eventType: 'AwsApiCall',
      managementEvent: management,
      recipientAccountId: BENCH_ACCOUNT,
      eventCategory: management ? 'Management' : 'Data',
      tlsDetails: { tlsVersion: TLS, cipherSuite: CIPHER, clientProvidedHostHeader: eventSource },
      ...extra,
    };
    // A small share of calls fail, as in any account (they are replayed as "failed call").
    if (mayFail && rng.chance(0.02)) {
      rec.errorCode = 'AccessDenied';
      rec.errorMessage = `User: ${who.arn} is not authorized to perform: ${eventSource.split('.')[0]}:${eventName} because no identity-based policy allows the action`;
      rec.responseElements = null;
    }
    return rec;
  }

  // --- everyday traffic ------------------------------------------------------------------------------------

  private s3Object(rng: Prng, at: number, region: string, eventName: string): CloudTrailJson {
    const bucket = rng.pick(BUCKETS);
    const key = `${rng.pick(['ingest', 'curated', 'exports', 'models'])}/dt=2026-11-${String(rng.between(1, 9)).padStart(2, '0')}/part-${rng.hex(5)}-${rng.uuid()}.snappy.parquet`;
    const host = `${bucket}.s3.${region}.amazonaws.com`;
    return this.record(
      rng,
      at,
      this.caller(rng),
      's3.amazonaws.com',
      eventName,
      {
        readOnly: eventName !== 'PutObject',
        requestParameters: { bucketName: bucket, Host: host, key },
        additionalEventData: {
          SignatureVersion: 'SigV4',
          CipherSuite: CIPHER,
          bytesTransferredIn: eventName === 'PutObject' ? rng.between(1_000, 90_000_000) : 0,
          AuthenticationMethod: 'AuthHeader',
          'x-amz-id-2': rng.alnum(76),
          bytesTransferredOut: eventName === 'GetObject' ? rng.between(1_000, 90_000_000) : 0,
        },
        resources: [
          { type: 'AWS::S3::Object', ARN: `arn:aws:s3:::${bucket}/${key}` },
          { accountId: BENCH_ACCOUNT, type: 'AWS::S3::Bucket', ARN: `arn:aws:s3:::${bucket}` },
        ],
        tlsDetails: { tlsVersion: TLS, cipherSuite: CIPHER, clientProvidedHostHeader: host },
      },
      false,
    );
  }

  private kms(rng: Prng, at: number, region: string, eventName: string): CloudTrailJson {
    const service = rng.pick(this.services);
    const keyArn = `arn:aws:kms:${region}:${BENCH_ACCOUNT}:key/${rng.pick(['0f1e2d3c', '9a8b7c6d'])}-1234-4abc-9def-${rng.pick(['0123456789ab', 'ba9876543210'])}`;
    const context =
      service.arn === 's3.amazonaws.com'
        ? { 'aws:s3:arn': `arn:aws:s3:::${rng.pick(BUCKETS)}/${rng.hex(24)}` }
        : {
            'aws:lambda:FunctionArn': `arn:aws:lambda:${region}:${BENCH_ACCOUNT}:function:${rng.pick(FUNCTIONS)}`,
          };
    return this.record(rng, at, service, 'kms.amazonaws.com', eventName, {
      requestParameters: {
        encryptionContext: context,
        encryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        ...(eventName === 'GenerateDataKey' ? { keyId: keyArn, keySpec: 'AES_256' } : {}),
      },
      resources: [{ accountId: BENCH_ACCOUNT, type: 'AWS::KMS::Key', ARN: keyArn }],
      sharedEventID: rng.uuid(),
      eventType: 'AwsServiceEvent',
      tlsDetails: undefined,
    });
  }

  private assumeRole(rng: Prng, at: number, region: string): CloudTrailJson {
    const role = rng.pick(['order-ingest-role', 'etl-glue-role', 'rag-retriever-role', 'ci-deployer']);
    const session = rng.chance(0.5) ? `${role}-${rng.hex(8)}` : `botocore-session-${at}`;
    const roleArn = `arn:aws:iam::${BENCH_ACCOUNT}:role/${role}`;
    const roleId = `AROA${rng.upperAlnum(17)}`;
    return this.record(
      rng,
      at,
      rng.chance(0.6) ? rng.pick(this.services) : this.caller(rng),
      'sts.amazonaws.com',
      'AssumeRole',
      {
        requestParameters: { roleArn, roleSessionName: session, durationSeconds: 3600 },
        responseElements: {
          credentials: {
            accessKeyId: `ASIA${rng.upperAlnum(16)}`,
            sessionToken: rng.chars(
              rng.between(400, 900),
              'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
            ),
            expiration: iamTextDate(at + 3_600_000, true),
          },
          assumedRoleUser: {
            assumedRoleId: `${roleId}:${session}`,
            arn: `arn:aws:sts::${BENCH_ACCOUNT}:assumed-role/${role}/${session}`,
          },
        },
        resources: [{ accountId: BENCH_ACCOUNT, type: 'AWS::IAM::Role', ARN: roleArn }],
        tlsDetails: {
          tlsVersion: TLS,
          cipherSuite: CIPHER,
          clientProvidedHostHeader: `sts.${region}.amazonaws.com`,
        },
      },
    );
  }

  private dynamo(rng: Prng, at: number, region: string): CloudTrailJson {
    const table = rng.pick(TABLES);
    const eventName = rng.pick(['GetItem', 'PutItem', 'Query', 'UpdateItem']);
    return this.record(
      rng,
      at,
      this.caller(rng),
      'dynamodb.amazonaws.com',
      eventName,
      {
        readOnly: eventName === 'GetItem' || eventName === 'Query',
        requestParameters: {
          tableName: table,
          ...(eventName === 'Query'
            ? { keyConditionExpression: '#pk = :pk', limit: 100 }
            : { key: { pk: `${table}#${rng.hex(12)}`, sk: `v#${rng.between(0, 9)}` } }),
        },
        resources: [
          {
            accountId: BENCH_ACCOUNT,
            type: 'AWS::DynamoDB::Table',
            ARN: `arn:aws:dynamodb:${region}:${BENCH_ACCOUNT}:table/${table}`,
          },
        ],
      },
      false,
    );
  }

  private lambdaInvoke(rng: Prng, at: number, region: string): CloudTrailJson {
    const fn = `arn:aws:lambda:${region}:${BENCH_ACCOUNT}:function:${rng.pick(FUNCTIONS)}`;
    return this.record(
      rng,
      at,
      this.caller(rng),
      'lambda.amazonaws.com',
      'Invoke',
      {
        readOnly: false,
        requestParameters: {
          functionName: fn,
          invocationType: rng.pick(['RequestResponse', 'Event']),
          sourceArn: null,
        },
        additionalEventData: { functionVersion: `${fn}:$LATEST` },
        resources: [{ accountId: BENCH_ACCOUNT, type: 'AWS::Lambda::Function', ARN: fn }],
      },
      false,
    );
  }

  private bedrockInvoke(rng: Prng, at: number, region: string): CloudTrailJson {
    const bearer = rng.chance(0.1);
    return this.record(
      rng,
      at,
      bearer ? rng.pick(this.users) : this.caller(rng),
      'bedrock.amazonaws.com',
      rng.pick(['InvokeModel', 'Converse', 'ConverseStream']),
      {
        requestParameters: { modelId: rng.pick(MODELS) },
        additionalEventData: {
          inputTokens: rng.between(50, 20_000),
          outputTokens: rng.between(10, 4_000),
          ...(bearer ? { callWithBearerToken: true } : {}),
        },
        tlsDetails: {
          tlsVersion: TLS,
          cipherSuite: CIPHER,
          clientProvidedHostHeader: `bedrock-runtime.${region}.amazonaws.com`,
        },
      },
    );
  }

  private describeInstances(rng: Prng, at: number): CloudTrailJson {
    return this.record(rng, at, this.caller(rng), 'ec2.amazonaws.com', 'DescribeInstances', {
      requestParameters: {
        instancesSet: {},
        filterSet: {
          items: [
            { name: 'tag:Name', valueSet: { items: [{ value: rng.pick(FUNCTIONS) }] } },
            { name: 'instance-state-name', valueSet: { items: [{ value: 'running' }] } },
          ],
        },
      },
    });
  }

  private runInstances(rng: Prng, at: number, region: string): CloudTrailJson {
    const instanceId = `i-0${rng.hex(16)}`;
    const subnet = `subnet-0${rng.hex(16)}`;
    const vpc = `vpc-0${rng.hex(16)}`;
    const ip = `10.0.${rng.between(0, 63)}.${rng.between(2, 250)}`;
    return this.record(rng, at, this.caller(rng), 'ec2.amazonaws.com', 'RunInstances', {
      readOnly: false,
      requestParameters: {
        instancesSet: { items: [{ imageId: `ami-0${rng.hex(16)}`, minCount: 1, maxCount: 1 }] },
        instanceType: rng.pick(INSTANCE_TYPES),
        blockDeviceMapping: {},
        monitoring: { enabled: false },
        disableApiTermination: false,
        disableApiStop: false,
        clientToken: rng.uuid(),
        subnetId: subnet,
        tagSpecificationSet: {
          items: [{ resourceType: 'instance', tags: [{ key: 'Name', value: 'batch-worker' }] }],
        },
      },
      responseElements: {
        requestId: rng.uuid(),
        reservationId: `r-0${rng.hex(16)}`,
        ownerId: BENCH_ACCOUNT,
        groupSet: {},
        instancesSet: {
          items: [
            {
              instanceId,
              imageId: `ami-0${rng.hex(16)}`,
              currentInstanceBootMode: 'uefi',
              instanceState: { code: 0, name: 'pending' },
              privateDnsName: `ip-${ip.replaceAll('.', '-')}.${region === HOME_REGION ? 'ec2.internal' : `${region}.compute.internal`}`,
              amiLaunchIndex: 0,
              productCodes: {},
              instanceType: rng.pick(INSTANCE_TYPES),
              launchTime: at,
              placement: { availabilityZone: `${region}${rng.pick(['a', 'b', 'c'])}`, tenancy: 'default' },
              monitoring: { state: 'disabled' },
              subnetId: subnet,
              vpcId: vpc,
              privateIpAddress: ip,
              stateReason: { code: 'pending', message: 'pending' },
              architecture: 'arm64',
              rootDeviceType: 'ebs',
              rootDeviceName: '/dev/xvda',
              blockDeviceMapping: {},
              virtualizationType: 'hvm',
              hypervisor: 'xen',
              tagSet: { items: [{ key: 'Name', value: 'batch-worker' }] },
              groupSet: { items: [{ groupId: `sg-0${rng.hex(16)}`, groupName: 'batch-workers' }] },
              sourceDestCheck: true,
              networkInterfaceSet: {
                items: [
                  {
                    networkInterfaceId: `eni-0${rng.hex(16)}`,
                    subnetId: subnet,
                    vpcId: vpc,
                    ownerId: BENCH_ACCOUNT,
                    status: 'in-use',
                    macAddress: '0a:1b:2c:3d:4e:5f',
                    privateIpAddress: ip,
                    sourceDestCheck: true,
                    interfaceType: 'interface',
                    groupSet: { items: [{ groupId: `sg-0${rng.hex(16)}`, groupName: 'batch-workers' }] },
                    attachment: {
                      attachmentId: `eni-attach-0${rng.hex(16)}`,
                      deviceIndex: 0,
                      networkCardIndex: 0,
                      status: 'attaching',
                      attachTime: at,
                      deleteOnTermination: true,
                    },
                    privateIpAddressesSet: { item: [{ privateIpAddress: ip, primary: true }] },
                    ipv6AddressesSet: {},
                    tagSet: {},
                  },
                ],
              },
              ebsOptimized: true,
              enaSupport: true,
              cpuOptions: { coreCount: 2, threadsPerCore: 1 },
              capacityReservationSpecification: { capacityReservationPreference: 'open' },
              enclaveOptions: { enabled: false },
              metadataOptions: {
                state: 'pending',
                httpTokens: 'required',
                httpPutResponseHopLimit: 2,
                httpEndpoint: 'enabled',
                httpProtocolIpv4: 'ipv4',
                httpProtocolIpv6: 'disabled',
                instanceMetadataTags: 'disabled',
              },
              maintenanceOptions: { autoRecovery: 'default' },
              privateDnsNameOptions: {
                hostnameType: 'ip-name',
                enableResourceNameDnsARecord: false,
                enableResourceNameDnsAAAARecord: false,
              },
            },
          ],
        },
      },
    });
  }

  /** Read-only IAM calls: same eventSource as key events, so replay must look at the name to skip them. */
  private iamRead(rng: Prng, at: number): CloudTrailJson {
    const which = rng.int(4);
    const eventName = ['ListUsers', 'GetUser', 'ListRoles', 'GetRole'][which] as string;
    const requestParameters =
      which === 0
        ? { maxItems: 100 }
        : which === 1
          ? { userName: rng.pick(['bob', 'carol', 'reporting-bot']) }
          : which === 2
            ? { pathPrefix: '/' }
            : { roleName: rng.pick(['order-ingest-role', 'etl-glue-role']) };
    return this.record(rng, at, this.caller(rng), 'iam.amazonaws.com', eventName, { requestParameters });
  }

  private logs(rng: Prng, at: number): CloudTrailJson {
    const fn = rng.pick(FUNCTIONS);
    return this.record(rng, at, rng.pick(this.roles), 'logs.amazonaws.com', 'CreateLogStream', {
      readOnly: false,
      requestParameters: {
        logGroupName: `/aws/lambda/${fn}`,
        logStreamName: `2026/11/0${rng.between(1, 9)}/[$LATEST]${rng.hex(32)}`,
      },
    });
  }

  private secret(rng: Prng, at: number, region: string): CloudTrailJson {
    return this.record(rng, at, rng.pick(this.roles), 'secretsmanager.amazonaws.com', 'GetSecretValue', {
      requestParameters: {
        secretId: `arn:aws:secretsmanager:${region}:${BENCH_ACCOUNT}:secret:prod/db-${rng.alnum(6)}`,
      },
    });
  }

  private callerIdentity(rng: Prng, at: number): CloudTrailJson {
    return this.record(rng, at, this.caller(rng), 'sts.amazonaws.com', 'GetCallerIdentity', {});
  }
}

/** Per cycle of the scenario: the users and keys its events refer to. */
interface Cycle {
  tagged: string;
  untagged: string;
  longLived: string;
  console: string;
  keys: { tagged: string; untagged: string; longLived: string; console: string };
}

const DAY_MS = 86_400_000;
const OWNER_TAGS = (owner: string) => [
  { key: 'owner', value: owner },
  { key: 'purpose', value: 'retrieval-augmented chat' },
  { key: 'review-cadence', value: 'quarterly' },
];

/**
 * The Bedrock-key events, in an order that exercises every replay path. `decisions` is what the replay
 * should print for the event given the events before it (each count holds even if the cycle is cut short).
 */
class KeyEventScenario {
  static readonly STEPS = 11;
  private index = 0;
  private cycle: Cycle | null = null;

  next(f: RecordFactory, rng: Prng, at: number): PlantedKeyEvent {
    const step = this.index % KeyEventScenario.STEPS;
    const n = Math.floor(this.index / KeyEventScenario.STEPS);
    this.index += 1;
    if (step === 0 || this.cycle === null) {
      const key = () => `ACCA${rng.upperAlnum(17)}`;
      this.cycle = {
        tagged: `svc-rag-${n}`,
        untagged: `svc-batch-${n}`,
        longLived: `svc-analytics-${n}`,
        console: `BedrockAPIKey-${rng.alnum(4)}`,
        keys: { tagged: key(), untagged: key(), longLived: key(), console: key() },
      };
    }
    const c = this.cycle;
    const admin = f.adminIdentity(rng);
    const iam = (eventName: string, extra: CloudTrailJson) =>
      f.record(
        rng,
        at,
        admin,
        'iam.amazonaws.com',
        eventName,
        {
          readOnly: false,
          tlsDetails: { tlsVersion: TLS, cipherSuite: CIPHER, clientProvidedHostHeader: 'iam.amazonaws.com' },
          ...extra,
        },
        true,
        false,
      );
    const create = (
      user: string,
      keyId: string,
      service: string,
      ageDays: number | null,
      expires: string | null,
      created: string,
    ) =>
      iam('CreateServiceSpecificCredential', {
        requestParameters: {
          userName: user,
          serviceName: service,
          ...(ageDays !== null ? { credentialAgeDays: ageDays } : {}),
        },
        responseElements: {
          serviceSpecificCredential: {
            createDate: created,
            ...(expires !== null ? { expirationDate: expires } : {}),
            serviceName: service,
            ...(service === 'bedrock.amazonaws.com'
              ? { serviceCredentialAlias: `${user}-at-${BENCH_ACCOUNT}` }
              : { serviceUserName: `${user}-at-${BENCH_ACCOUNT}` }),
            serviceSpecificCredentialId: keyId,
            userName: user,
            status: 'Active',
          },
        },
      });

    switch (step) {
      case 0: // A tagged user: state only, no key yet.
        return {
          record: iam('CreateUser', {
            requestParameters: { userName: c.tagged, tags: OWNER_TAGS('alice@example.com') },
            responseElements: {
              user: {
                path: '/',
                userName: c.tagged,
                userId: `AIDA${rng.upperAlnum(17)}`,
                arn: `arn:aws:iam::${BENCH_ACCOUNT}:user/${c.tagged}`,
                createDate: iamTextDate(at, true),
              },
            },
          }),
          decisions: 0,
          relevant: true,
        };
      case 1: // 30-day key, ISO dates: compliant (ALLOW).
        return {
          record: create(
            c.tagged,
            c.keys.tagged,
            'bedrock.amazonaws.com',
            30,
            new Date(at + 30 * DAY_MS).toISOString(),
            new Date(at).toISOString(),
          ),
          decisions: 1,
          relevant: true,
        };
      case 2: // No credentialAgeDays: never expires, untagged (DEACTIVATE).
        return {
          record: create(
            c.untagged,
            c.keys.untagged,
            'bedrock.amazonaws.com',
            null,
            null,
            iamTextDate(at, true),
          ),
          decisions: 1,
          relevant: true,
        };
      case 3: // A CodeCommit credential: not a Bedrock key.
        return {
          record: create(
            c.untagged,
            `ACCA${rng.upperAlnum(17)}`,
            'codecommit.amazonaws.com',
            null,
            null,
            iamTextDate(at, false),
          ),
          decisions: 0,
          relevant: false,
        };
      case 4: // Tags added to the user with the never-expiring key: it is re-evaluated.
        return {
          record: iam('TagUser', {
            requestParameters: { userName: c.untagged, tags: OWNER_TAGS('bob@example.com') },
          }),
          decisions: 1,
          relevant: true,
        };
      case 5: // 365-day key, text dates without the comma: too long (NOTIFY).
        return {
          record: create(
            c.longLived,
            c.keys.longLived,
            'bedrock.amazonaws.com',
            365,
            iamTextDate(at + 365 * DAY_MS, false),
            iamTextDate(at, false),
          ),
          decisions: 1,
          relevant: true,
        };
      case 6: // The never-expiring key is deactivated.
        return {
          record: iam('UpdateServiceSpecificCredential', {
            requestParameters: {
              userName: c.untagged,
              serviceSpecificCredentialId: c.keys.untagged,
              status: 'Inactive',
            },
          }),
          decisions: 1,
          relevant: true,
        };
      case 7: // A failed call (third key on a user): changed nothing.
        return {
          record: iam('CreateServiceSpecificCredential', {
            requestParameters: {
              userName: c.tagged,
              serviceName: 'bedrock.amazonaws.com',
              credentialAgeDays: 30,
            },
            errorCode: 'LimitExceededException',
            errorMessage: 'Cannot exceed quota for CredentialsPerUser: 2',
          }),
          decisions: 0,
          relevant: false,
        };
      case 8: // The console's flow: a BedrockAPIKey-xxxx user...
        return {
          record: iam('CreateUser', {
            requestParameters: { userName: c.console },
            responseElements: {
              user: {
                path: '/',
                userName: c.console,
                userId: `AIDA${rng.upperAlnum(17)}`,
                arn: `arn:aws:iam::${BENCH_ACCOUNT}:user/${c.console}`,
                createDate: iamTextDate(at, true),
              },
            },
            sessionCredentialFromConsole: 'true',
          }),
          decisions: 0,
          relevant: true,
        };
      case 9: // ...and its key, expiring a century out: never expires (DEACTIVATE).
        return {
          record: create(
            c.console,
            c.keys.console,
            'bedrock.amazonaws.com',
            36_500,
            new Date(at + 36_500 * DAY_MS).toISOString(),
            new Date(at).toISOString(),
          ),
          decisions: 1,
          relevant: true,
        };
      default: // The 365-day key is deleted: a decision records it is gone.
        return {
          record: iam('DeleteServiceSpecificCredential', {
            requestParameters: { userName: c.longLived, serviceSpecificCredentialId: c.keys.longLived },
          }),
          decisions: 1,
          relevant: true,
        };
    }
  }
}

/** Events in one scenario cycle. */
export const KEY_EVENTS_PER_CYCLE = KeyEventScenario.STEPS;
