import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { BedrockKeyProbe } from '../adapters/bedrock-key-probe';
import { dynamoClient, iamClient, RETRY_POLICY, SDK_MAX_ATTEMPTS, snsClient } from '../adapters/clients';
import { documentClient } from '../adapters/document-client';
import { governedAccountsFromEnv } from '../adapters/governed-accounts';
import { usageStoreFromEnv } from '../adapters/usage-store';
import type { UndecidedLeakSink } from '../domain/leak-undecided';
import { CONFIG_ENV, parsePolicy } from '../shared/config';
import { requireEnv } from '../shared/env';
import { createLeakHandler } from './leak-handler';

/** Lambda entry point of the log quarantine. Initialised once per container; a bad environment fails the cold start. */

const env = process.env;
const config = parsePolicy(requireEnv(env, CONFIG_ENV));
const iam = iamClient();
const dynamo = dynamoClient();
// Set by the stack only when usage.regions is not empty: absent, UNUSED is not evaluated here.
const usage = usageStoreFromEnv(env, documentClient(dynamo));
const cloudTrail = new Map<string, CloudTrailClient>();
const governedAccountId = requireEnv(env, 'GOVERNED_ACCOUNT_ID');
// Organization mode when the hub stack sets ORG_SETTINGS_PARAMETER: a leaked key is acted on in its own account
// through the member role (session keyguard-leak) when that account is governed.
const organization = governedAccountsFromEnv(env, {
  functionName: 'leak',
  hubAccountId: governedAccountId,
  hubIam: iam,
});

const undecidedQueueUrl = requireEnv(env, 'UNDECIDED_LEAKS_QUEUE_URL');
let undecidedQueue: UndecidedLeakSink | undefined;
/**
 * The undecided-leaks queue is written only when a finding could not be decided, which most invocations never see
 * (most log batches hold no key, and most keys are decided): its adapter and SQS client are loaded and built on
 * first use, not at every cold start. A `require` inside the function: esbuild initialises the module it names (and
 * the SQS client it alone imports) only when that line runs; test/lib/leak-bundle-load.test.ts checks the bundle.
 * The first batch that needs it pays for it instead.
 */
const undecided: UndecidedLeakSink = {
  record: async (batch) => {
    undecidedQueue ??= (
      require('../adapters/undecided-leaks') as typeof import('../adapters/undecided-leaks')
    ).undecidedLeaksQueue(undecidedQueueUrl, RETRY_POLICY);
    return undecidedQueue.record(batch);
  },
};

export const handler = createLeakHandler({
  config,
  policyVersion: requireEnv(env, 'POLICY_VERSION'),
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  keysTable: requireEnv(env, 'KEYS_TABLE_NAME'),
  approvalsTable: requireEnv(env, 'APPROVALS_TABLE_NAME'),
  topicArn: requireEnv(env, 'TOPIC_ARN'),
  governedAccountId,
  iamFor: () => iam,
  ...(organization ? { organization } : {}),
  // Event history is regional: one client per region a short-term key names, created on first use.
  cloudTrailFor: (region) => {
    let c = cloudTrail.get(region);
    if (!c) {
      c = new CloudTrailClient({ region, maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' });
      cloudTrail.set(region, c);
    }
    return c;
  },
  dynamo,
  sns: snsClient(),
  logger: new Logger(),
  metrics: new Metrics(),
  // Long-term keys are checked against Bedrock in the function's own region (Lambda sets AWS_REGION); the call
  // is authenticated by the found key alone and needs no permission of the function's role.
  verifier: new BedrockKeyProbe({ region: requireEnv(env, 'AWS_REGION') }),
  // Findings not decided, as redacted records (the function has no failure destination: it would hold the lines).
  undecided,
  ...(usage ? { usage } : {}),
});
