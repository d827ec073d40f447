import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { dynamoClient, iamClient, snsClient } from '../adapters/clients';
import { USAGE_TABLE_ENV } from '../adapters/usage-store';
import { CONFIG_ENV, parsePolicy } from '../shared/config';
import { requireEnv } from '../shared/env';
import { createKeyUsageHandler } from './key-usage-handler';

/** Lambda entry point of flow 3 (key usage). Initialised once per container; a bad environment fails the cold start. */

const env = process.env;
const config = parsePolicy(requireEnv(env, CONFIG_ENV));
const iam = iamClient();

export const handler = createKeyUsageHandler({
  config,
  policyVersion: requireEnv(env, 'POLICY_VERSION'),
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  keysTable: requireEnv(env, 'KEYS_TABLE_NAME'),
  approvalsTable: requireEnv(env, 'APPROVALS_TABLE_NAME'),
  usageTable: requireEnv(env, USAGE_TABLE_ENV),
  topicArn: requireEnv(env, 'TOPIC_ARN'),
  governedAccountId: requireEnv(env, 'GOVERNED_ACCOUNT_ID'),
  // One account for now; organization mode will return a client for an assumed role per member account.
  iamFor: () => iam,
  dynamo: dynamoClient(),
  sns: snsClient(),
  logger: new Logger(),
  metrics: new Metrics(),
});
