import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { dynamoClient, iamClient, snsClient } from '../adapters/clients';
import { documentClient } from '../adapters/document-client';
import { governedAccountsFromEnv } from '../adapters/governed-accounts';
import { usageStoreFromEnv } from '../adapters/usage-store';
import { CONFIG_ENV, parsePolicy } from '../shared/config';
import { requireEnv } from '../shared/env';
import { createCredentialEventHandler } from './credential-event-handler';

/** Lambda entry point. Everything is initialised once per container, and a bad environment fails the cold start. */

const env = process.env;
const config = parsePolicy(requireEnv(env, CONFIG_ENV));
const iam = iamClient();
const dynamo = dynamoClient();
// Set by the stack only when usage.regions is not empty: absent, UNUSED is not evaluated here.
const usage = usageStoreFromEnv(env, documentClient(dynamo));
const governedAccountId = requireEnv(env, 'GOVERNED_ACCOUNT_ID');
// Organization mode when the hub stack sets ORG_SETTINGS_PARAMETER: the settings are read from SSM on first use,
// member accounts are reached through their member role (session keyguard-credential-event), and Organizations
// through ORG_READER_ROLE_ARN (absent: the hub is the delegated administrator and reads it itself).
const organization = governedAccountsFromEnv(env, {
  functionName: 'credential-event',
  hubAccountId: governedAccountId,
  hubIam: iam,
});

export const handler = createCredentialEventHandler({
  config,
  policyVersion: requireEnv(env, 'POLICY_VERSION'),
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  keysTable: requireEnv(env, 'KEYS_TABLE_NAME'),
  approvalsTable: requireEnv(env, 'APPROVALS_TABLE_NAME'),
  idempotencyTable: requireEnv(env, 'IDEMPOTENCY_TABLE_NAME'),
  topicArn: requireEnv(env, 'TOPIC_ARN'),
  governedAccountId,
  // The hub's own account; in organization mode `organization` gives the client of each governed account.
  iamFor: () => iam,
  ...(organization ? { organization } : {}),
  dynamo,
  sns: snsClient(),
  logger: new Logger(),
  metrics: new Metrics(),
  ...(usage ? { usage } : {}),
});
