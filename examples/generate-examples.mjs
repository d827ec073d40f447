#!/usr/bin/env node
/**
 * Regenerates the example inputs of `keyguard replay` (examples/cloudtrail, examples/events) from the
 * readable scenario below. Output is deterministic: ids come from a seeded generator and gzip headers carry
 * no timestamp, so re-running it changes nothing unless the scenario changed.
 *
 *   node examples/generate-examples.mjs
 *
 * The story (account 111122223333, us-east-1, 20-22 Nov 2026) is described in examples/README.md.
 * Secrets are never real: every secret field reads HIDDEN_DUE_TO_SECURITY_REASONS, as CloudTrail redacts it.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const ACCOUNT = '111122223333';
const REGION = 'us-east-1';
const HIDDEN = 'HIDDEN_DUE_TO_SECURITY_REASONS';

// Deterministic ids (mulberry32).
let seed = 0x6b657967;
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (alphabet, n) => Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
const HEX = '0123456789abcdef';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const uuid = () => `${pick(HEX, 8)}-${pick(HEX, 4)}-4${pick(HEX, 3)}-${pick('89ab', 1)}${pick(HEX, 3)}-${pick(HEX, 12)}`;
const keyId = () => `ACCA${pick(UPPER, 17)}`;
const suffix = () => pick('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 16);

// Principals.
const alice = {
  type: 'AssumedRole',
  principalId: 'AROARZ5EXAMPLE4PLATF:alice@example.com',
  arn: `arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/alice@example.com`,
  accountId: ACCOUNT,
  accessKeyId: 'ASIARZ5EXAMPLEALICE7',
  sessionContext: {
    sessionIssuer: {
      type: 'Role',
      principalId: 'AROARZ5EXAMPLE4PLATF',
      arn: `arn:aws:iam::${ACCOUNT}:role/PlatformAdmin`,
      accountId: ACCOUNT,
      userName: 'PlatformAdmin',
    },
    attributes: { creationDate: '2026-11-20T08:58:12Z', mfaAuthenticated: 'false' },
  },
};
const bob = {
  type: 'IAMUser',
  principalId: 'AIDARZ5EXAMPLEBOB001',
  arn: `arn:aws:iam::${ACCOUNT}:user/bob`,
  accountId: ACCOUNT,
  accessKeyId: 'AKIARZ5EXAMPLEBOB001',
  userName: 'bob',
};
const carol = {
  type: 'IAMUser',
  principalId: 'AIDARZ5EXAMPLECAROL1',
  arn: `arn:aws:iam::${ACCOUNT}:user/carol`,
  accountId: ACCOUNT,
  accessKeyId: 'ASIARZ5EXAMPLECAROL1',
  userName: 'carol',
  sessionContext: { attributes: { creationDate: '2026-11-20T14:02:51Z', mfaAuthenticated: 'true' } },
};
const dana = {
  type: 'IAMUser',
  principalId: 'AIDARZ5EXAMPLEDANA01',
  arn: `arn:aws:iam::${ACCOUNT}:user/dana`,
  accountId: ACCOUNT,
  accessKeyId: 'AKIARZ5EXAMPLEDANA01',
  userName: 'dana',
};
const deployer = {
  type: 'AssumedRole',
  principalId: 'AROARZ5EXAMPLEGHDEPL:GitHubActions',
  arn: `arn:aws:sts::${ACCOUNT}:assumed-role/GitHubActionsDeploy/GitHubActions`,
  accountId: ACCOUNT,
  accessKeyId: 'ASIARZ5EXAMPLEGHACT1',
  sessionContext: {
    sessionIssuer: {
      type: 'Role',
      principalId: 'AROARZ5EXAMPLEGHDEPL',
      arn: `arn:aws:iam::${ACCOUNT}:role/GitHubActionsDeploy`,
      accountId: ACCOUNT,
      userName: 'GitHubActionsDeploy',
    },
    attributes: { creationDate: '2026-11-21T15:58:40Z', mfaAuthenticated: 'false' },
  },
};
const userIdentityOf = (name, principalId) => ({
  type: 'IAMUser',
  principalId,
  arn: `arn:aws:iam::${ACCOUNT}:user/${name}`,
  accountId: ACCOUNT,
  accessKeyId: 'AKIARZ5EXAMPLECHATB1',
  userName: name,
});

const CLI_UA = (cmd) =>
  `aws-cli/2.22.4 md/awscrt#0.23.4 ua/2.1 os/linux#6.8.0-1019-aws md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.24 md/prompt#off md/command#${cmd}`;
const CONSOLE_UA = 'AWS Internal';
const SDK_UA = 'aws-sdk-js/3.1169.0 ua/2.1 os/linux#6.8.0 lang/js md/nodejs#20.20.2 api/iam#3.1169.0 m/E';

function record({ time, source = 'iam.amazonaws.com', name, who, ua, ip = '203.0.113.24', req = null, res = null, readOnly = false, error, region = REGION, extra = {} }) {
  const host = source === 'iam.amazonaws.com' ? 'iam.amazonaws.com' : source === 'sts.amazonaws.com' ? 'sts.amazonaws.com' : source === 's3.amazonaws.com' ? 's3.amazonaws.com' : `bedrock-runtime.${region}.amazonaws.com`;
  return {
    eventVersion: '1.11',
    userIdentity: who,
    eventTime: time,
    eventSource: source,
    eventName: name,
    awsRegion: region,
    sourceIPAddress: ua === CONSOLE_UA ? 'AWS Internal' : ip,
    userAgent: ua,
    ...(error ? { errorCode: error.code, errorMessage: error.message } : {}),
    requestParameters: req,
    responseElements: res,
    requestID: uuid(),
    eventID: uuid(),
    readOnly,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT,
    eventCategory: 'Management',
    tlsDetails: { tlsVersion: 'TLSv1.3', cipherSuite: 'TLS_AES_128_GCM_SHA256', clientProvidedHostHeader: host },
    ...(ua === CONSOLE_UA ? { sessionCredentialFromConsole: 'true' } : {}),
    ...extra,
  };
}

const tagList = (tags) => Object.entries(tags).map(([key, value]) => ({ key, value }));

function createUser(time, who, ua, userName, createDateText, tags) {
  return record({
    time,
    name: 'CreateUser',
    who,
    ua,
    req: tags ? { userName, tags: tagList(tags) } : { userName },
    res: {
      user: {
        path: '/',
        userName,
        userId: `AIDARZ5${pick(UPPER, 13)}`,
        arn: `arn:aws:iam::${ACCOUNT}:user/${userName}`,
        createDate: createDateText,
        ...(tags ? { tags: tagList(tags) } : {}),
      },
    },
  });
}

function createKey(time, who, ua, { userName, id, ageDays, createDate, expirationDate, service = 'bedrock.amazonaws.com' }) {
  const bedrock = service === 'bedrock.amazonaws.com';
  return record({
    time,
    name: 'CreateServiceSpecificCredential',
    who,
    ua,
    req: { userName, serviceName: service, ...(ageDays !== undefined ? { credentialAgeDays: ageDays } : {}) },
    res: {
      serviceSpecificCredential: {
        createDate,
        ...(expirationDate ? { expirationDate } : {}),
        serviceName: service,
        ...(bedrock
          ? { serviceCredentialAlias: `${userName}-at-${ACCOUNT}`, serviceCredentialSecret: HIDDEN }
          : { serviceUserName: `${userName}-at-${ACCOUNT}`, servicePassword: HIDDEN }),
        serviceSpecificCredentialId: id,
        userName,
        status: 'Active',
      },
    },
  });
}

const tagUser = (time, who, ua, userName, tags) =>
  record({ time, name: 'TagUser', who, ua, req: { userName, tags: tagList(tags) } });
const untagUser = (time, who, ua, userName, tagKeys) =>
  record({ time, name: 'UntagUser', who, ua, req: { userName, tagKeys } });
const updateKey = (time, who, ua, userName, id, status) =>
  record({ time, name: 'UpdateServiceSpecificCredential', who, ua, req: { userName, serviceSpecificCredentialId: id, status } });
const deleteKey = (time, who, ua, userName, id) =>
  record({ time, name: 'DeleteServiceSpecificCredential', who, ua, req: { userName, serviceSpecificCredentialId: id } });

// Noise: calls keyguard must read past.
const assumeRole = (time) =>
  record({
    time,
    source: 'sts.amazonaws.com',
    name: 'AssumeRole',
    who: { type: 'IAMUser', principalId: 'AIDARZ5EXAMPLEALICE1', arn: `arn:aws:iam::${ACCOUNT}:user/alice`, accountId: ACCOUNT, accessKeyId: 'AKIARZ5EXAMPLEALICE1', userName: 'alice' },
    ua: CLI_UA('sts.assume-role'),
    readOnly: true,
    req: { roleArn: `arn:aws:iam::${ACCOUNT}:role/PlatformAdmin`, roleSessionName: 'alice@example.com', durationSeconds: 3600 },
    res: {
      credentials: { accessKeyId: 'ASIARZ5EXAMPLEALICE7', sessionToken: HIDDEN, expiration: 'Nov 20, 2026, 9:58:12 AM' },
      assumedRoleUser: { assumedRoleId: 'AROARZ5EXAMPLE4PLATF:alice@example.com', arn: alice.arn },
    },
    extra: { resources: [{ accountId: ACCOUNT, type: 'AWS::IAM::Role', ARN: `arn:aws:iam::${ACCOUNT}:role/PlatformAdmin` }], sharedEventID: uuid() },
  });
const listBuckets = (time, who) =>
  record({ time, source: 's3.amazonaws.com', name: 'ListBuckets', who, ua: CLI_UA('s3.ls'), readOnly: true, req: { Host: 's3.us-east-1.amazonaws.com' }, res: null, extra: { additionalEventData: { SignatureVersion: 'SigV4', CipherSuite: 'TLS_AES_128_GCM_SHA256', bytesTransferredIn: 0, AuthenticationMethod: 'AuthHeader', 'x-amz-id-2': pick(HEX, 32), bytesTransferredOut: 2114 } } });
const listUsers = (time, who) =>
  record({ time, name: 'ListUsers', who, ua: CLI_UA('iam.list-users'), readOnly: true, req: null, res: null });
const attachPolicy = (time, who, ua, userName, policy) =>
  record({ time, name: 'AttachUserPolicy', who, ua, req: { userName, policyArn: `arn:aws:iam::aws:policy/${policy}` } });
const invokeModel = (time, userName, principalId) =>
  record({
    time,
    source: 'bedrock.amazonaws.com',
    name: 'InvokeModel',
    who: { ...userIdentityOf(userName, principalId), accessKeyId: undefined },
    ua: 'python-requests/2.32.3',
    ip: '198.51.100.77',
    readOnly: true,
    req: { modelId: 'anthropic.claude-sonnet-4-5-20250929-v1:0' },
    res: null,
    extra: { additionalEventData: { callWithBearerToken: true, inputTokens: 812, outputTokens: 233 } },
  });

// ---- The scenario ----
const K = {
  chat1: keyId(),
  chat2: keyId(),
  batch: keyId(),
  consoleKey: keyId(),
  analytics: keyId(),
  rag: keyId(),
  codecommit: keyId(),
};

const files = [];
const logFile = (day, stamp, records, { gzip = true } = {}) => {
  const name = `${ACCOUNT}_CloudTrail_${REGION}_2026${'11'}${day}T${stamp}Z_${suffix()}.json${gzip ? '.gz' : ''}`;
  files.push({ path: join('cloudtrail', 'AWSLogs', ACCOUNT, 'CloudTrail', REGION, '2026', '11', day, name), records, gzip });
};

// 20 Nov, morning: a compliant key (tags on CreateUser, 30 days, ISO dates).
logFile('20', '0935', [
  assumeRole('2026-11-20T08:58:12Z'),
  createUser('2026-11-20T09:12:40Z', alice, CLI_UA('iam.create-user'), 'svc-chatbot', 'Nov 20, 2026, 9:12:40 AM', {
    owner: 'alice@example.com',
    purpose: 'customer-support-chatbot',
    'review-cadence': '90d',
  }),
  listBuckets('2026-11-20T09:20:03Z', alice),
  createKey('2026-11-20T09:31:02Z', alice, CLI_UA('iam.create-service-specific-credential'), {
    userName: 'svc-chatbot',
    id: K.chat1,
    ageDays: 30,
    createDate: '2026-11-20T09:31:02Z',
    expirationDate: '2026-12-20T09:31:02Z',
  }),
]);

// 20 Nov, 10:00: an untagged user and a key with no expiry at all; a CodeCommit credential (ignored).
logFile('20', '1010', [
  createUser('2026-11-20T10:04:51Z', bob, CLI_UA('iam.create-user'), 'svc-batch-summarizer', 'Nov 20, 2026, 10:04:51 AM'),
  createKey('2026-11-20T10:05:44Z', bob, CLI_UA('iam.create-service-specific-credential'), {
    userName: 'svc-batch-summarizer',
    id: K.batch,
    createDate: 'Nov 20, 2026, 10:05:44 AM',
  }),
  listUsers('2026-11-20T10:07:18Z', bob),
  createKey('2026-11-20T10:09:30Z', bob, CLI_UA('iam.create-service-specific-credential'), {
    userName: 'dev-bob',
    id: K.codecommit,
    service: 'codecommit.amazonaws.com',
    createDate: 'Nov 20, 2026, 10:09:30 AM',
  }),
]);

// 20 Nov, 14:20: the console's long-term key flow (user BedrockAPIKey-xxxx, "never" = expiry in 2125).
logFile('20', '1425', [
  createUser('2026-11-20T14:22:08Z', carol, CONSOLE_UA, 'BedrockAPIKey-7qzx', 'Nov 20, 2026, 2:22:08 PM'),
  attachPolicy('2026-11-20T14:22:09Z', carol, CONSOLE_UA, 'BedrockAPIKey-7qzx', 'AmazonBedrockLimitedAccess'),
  createKey('2026-11-20T14:22:10Z', carol, CONSOLE_UA, {
    userName: 'BedrockAPIKey-7qzx',
    id: K.consoleKey,
    createDate: 'Nov 20, 2026, 2:22:10 PM',
    expirationDate: 'Nov 20, 2125, 2:22:10 PM',
  }),
  tagUser('2026-11-20T14:24:30Z', carol, CONSOLE_UA, 'BedrockAPIKey-7qzx', {
    owner: 'carol@example.com',
    purpose: 'model-evaluation-prototype',
    'review-cadence': '30d',
  }),
]);

// 20 Nov, 14:40: a tagged user whose key lives a year (policy: 90 days); text dates without the comma.
logFile('20', '1445', [
  invokeModel('2026-11-20T14:43:19Z', 'svc-chatbot', 'AIDARZ5EXAMPLECHATB1'),
  createUser('2026-11-20T14:40:55Z', alice, SDK_UA, 'svc-analytics', 'Nov 20, 2026, 2:40:55 PM', {
    owner: 'dana@example.com',
    purpose: 'quarterly-report-drafts',
    'review-cadence': '180d',
  }),
  createKey('2026-11-20T14:41:07Z', alice, SDK_UA, {
    userName: 'svc-analytics',
    id: K.analytics,
    ageDays: 365,
    createDate: 'Nov 20, 2026 2:41:07 PM',
    expirationDate: 'Nov 20, 2027 2:41:07 PM',
  }),
]);

// 21 Nov, 11:15: rotation of the chatbot key, then a third key refused (two Bedrock keys per user at most).
logFile('21', '1120', [
  createKey('2026-11-21T11:15:33Z', alice, CLI_UA('iam.create-service-specific-credential'), {
    userName: 'svc-chatbot',
    id: K.chat2,
    ageDays: 30,
    createDate: '2026-11-21T11:15:33Z',
    expirationDate: '2026-12-21T11:15:33Z',
  }),
  record({
    time: '2026-11-21T11:17:02Z',
    name: 'CreateServiceSpecificCredential',
    who: alice,
    ua: CLI_UA('iam.create-service-specific-credential'),
    req: { userName: 'svc-chatbot', serviceName: 'bedrock.amazonaws.com', credentialAgeDays: 30 },
    res: null,
    error: { code: 'LimitExceeded', message: 'Cannot exceed quota for ServiceSpecificCredentialsPerUserPerService: 2' },
  }),
  listBuckets('2026-11-21T11:18:45Z', alice),
]);

// 21 Nov, 16:00: a pipeline creates an untagged user and key; alice tags the user 16 minutes later.
// CloudTrail does not promise order inside a file: the TagUser record comes first here.
logFile('21', '1625', [
  tagUser('2026-11-21T16:21:47Z', alice, CLI_UA('iam.tag-user'), 'svc-rag-indexer', {
    owner: 'erin@example.com',
    purpose: 'docs-search-indexing',
    'review-cadence': '90d',
  }),
  createUser('2026-11-21T16:02:19Z', deployer, SDK_UA, 'svc-rag-indexer', 'Nov 21, 2026 4:02:19 PM'),
  createKey('2026-11-21T16:05:10Z', deployer, SDK_UA, {
    userName: 'svc-rag-indexer',
    id: K.rag,
    ageDays: 30,
    createDate: 'Nov 21, 2026 4:05:10 PM',
    expirationDate: 'Dec 21, 2026 4:05:10 PM',
  }),
]);

// 22 Nov (saved uncompressed): a tag removed, a key deactivated, the CodeCommit credential deactivated,
// the first chatbot key's secret reset, and the console key deleted.
logFile(
  '22',
  '0910',
  [
    untagUser('2026-11-22T08:45:12Z', dana, CLI_UA('iam.untag-user'), 'svc-analytics', ['review-cadence']),
    updateKey('2026-11-22T08:50:03Z', bob, CLI_UA('iam.update-service-specific-credential'), 'svc-batch-summarizer', K.batch, 'Inactive'),
    updateKey('2026-11-22T08:52:40Z', bob, CLI_UA('iam.update-service-specific-credential'), 'dev-bob', K.codecommit, 'Inactive'),
    record({
      time: '2026-11-22T08:58:21Z',
      name: 'ResetServiceSpecificCredential',
      who: alice,
      ua: CLI_UA('iam.reset-service-specific-credential'),
      req: { userName: 'svc-chatbot', serviceSpecificCredentialId: K.chat1 },
      res: {
        serviceSpecificCredential: {
          createDate: '2026-11-20T09:31:02Z',
          expirationDate: '2026-12-20T09:31:02Z',
          serviceName: 'bedrock.amazonaws.com',
          serviceCredentialAlias: `svc-chatbot-at-${ACCOUNT}`,
          serviceCredentialSecret: HIDDEN,
          serviceSpecificCredentialId: K.chat1,
          userName: 'svc-chatbot',
          status: 'Active',
        },
      },
    }),
    deleteKey('2026-11-22T09:03:37Z', carol, CONSOLE_UA, 'BedrockAPIKey-7qzx', K.consoleKey),
    listUsers('2026-11-22T09:05:00Z', dana),
  ],
  { gzip: false },
);

// ---- EventBridge inputs (account 444455556666) ----
const EB_ACCOUNT = '444455556666';
const ebWho = {
  type: 'AssumedRole',
  principalId: 'AROAT7UEXAMPLEMLOPS1:frank@example.com',
  arn: `arn:aws:sts::${EB_ACCOUNT}:assumed-role/MLOps/frank@example.com`,
  accountId: EB_ACCOUNT,
  accessKeyId: 'ASIAT7UEXAMPLEFRANK1',
  sessionContext: {
    sessionIssuer: { type: 'Role', principalId: 'AROAT7UEXAMPLEMLOPS1', arn: `arn:aws:iam::${EB_ACCOUNT}:role/MLOps`, accountId: EB_ACCOUNT, userName: 'MLOps' },
    attributes: { creationDate: '2026-11-23T07:40:00Z', mfaAuthenticated: 'true' },
  },
};
const inAccount = (r) => ({ ...r, recipientAccountId: EB_ACCOUNT });
const eventBridge = (detail) => ({
  version: '0',
  id: uuid(),
  'detail-type': 'AWS API Call via CloudTrail',
  source: detail.eventSource.replace('.amazonaws.com', '').replace(/^/, 'aws.'),
  account: EB_ACCOUNT,
  time: detail.eventTime,
  region: 'us-east-1',
  resources: [],
  detail,
});
const E = { translate: keyId(), voice: keyId() };

const single = eventBridge(
  inAccount(
    createKey('2026-11-23T08:01:15Z', ebWho, SDK_UA, {
      userName: 'svc-translate',
      id: E.translate,
      ageDays: 30,
      createDate: 'Nov 23, 2026, 8:01:15 AM',
      expirationDate: 'Dec 23, 2026, 8:01:15 AM',
    }),
  ),
);

const ndjson = [
  eventBridge(
    inAccount(
      createUser('2026-11-23T08:10:02Z', ebWho, SDK_UA, 'svc-voice-bot', 'Nov 23, 2026, 8:10:02 AM', {
        owner: 'frank@example.com',
        purpose: 'ivr-voice-assistant',
        'review-cadence': '90d',
      }),
    ),
  ),
  eventBridge(
    inAccount(
      createKey('2026-11-23T08:10:40Z', ebWho, SDK_UA, {
        userName: 'svc-voice-bot',
        id: E.voice,
        createDate: '2026-11-23T08:10:40Z',
      }),
    ),
  ),
  eventBridge(inAccount(listBuckets('2026-11-23T08:12:00Z', ebWho))),
  // A plain CloudTrail record on its own line (the two shapes can be mixed).
  inAccount(updateKey('2026-11-23T08:30:09Z', ebWho, SDK_UA, 'svc-voice-bot', E.voice, 'Inactive')),
];

// ---- Write ----
rmSync(join(here, 'cloudtrail'), { recursive: true, force: true });
rmSync(join(here, 'events'), { recursive: true, force: true });
for (const f of files) {
  const out = join(here, f.path);
  mkdirSync(dirname(out), { recursive: true });
  const json = JSON.stringify({ Records: f.records });
  writeFileSync(out, f.gzip ? gzipSync(json) : `${JSON.stringify({ Records: f.records }, null, 2)}\n`);
}
mkdirSync(join(here, 'events'), { recursive: true });
writeFileSync(join(here, 'events', 'create-key-eventbridge.json'), `${JSON.stringify(single, null, 2)}\n`);
writeFileSync(join(here, 'events', 'iam-events.ndjson'), `${ndjson.map((e) => JSON.stringify(e)).join('\n')}\n`);
console.log(JSON.stringify({ keys: K, eventBridgeKeys: E, files: files.map((f) => f.path) }, null, 2));
