import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { dynamoClient, iamClient, snsClient } from '../adapters/clients';
import { governedAccountsFromEnv } from '../adapters/governed-accounts';
import { USAGE_TABLE_ENV } from '../adapters/usage-store';
import { CONFIG_ENV, parsePolicy } from '../shared/config';
import { requireEnv } from '../shared/env';
import { createKeyUsageHandler } from './key-usage-handler';

/** Lambda entry point of flow 3 (key usage). Initialised once per container; a bad environment fails the cold start. */

const env = process.env;
const config = parsePolicy(requireEnv(env, CONFIG_ENV));
const iam = iamClient();
const governedAccountId = requireEnv(env, 'GOVERNED_ACCOUNT_ID');
// Organization mode when the hub stack sets ORG_SETTINGS_PARAMETER: member accounts' forwarded usage is decided in
// that account through its member role (session keyguard-key-usage), its place (overrides) read through
// ORG_READER_ROLE_ARN.
const organization = governedAccountsFromEnv(env, {
  functionName: 'key-usage',
  hubAccountId: governedAccountId,
  hubIam: iam,
});

export const handler = createKeyUsageHandler({
  config,
  policyVersion: requireEnv(env, 'POLICY_VERSION'),
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  keysTable: requireEnv(env, 'KEYS_TABLE_NAME'),
  approvalsTable: requireEnv(env, 'APPROVALS_TABLE_NAME'),
  usageTable: requireEnv(env, USAGE_TABLE_ENV),
  topicArn: requireEnv(env, 'TOPIC_ARN'),
  governedAccountId,
  // The hub's own account; in organization mode `organization` gives the client of each governed account.
  iamFor: () => iam,
  ...(organization ? { organization } : {}),
  dynamo: dynamoClient(),
  sns: snsClient(),
  logger: new Logger(),
  metrics: new Metrics(),
});
