import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { dynamoClient, iamClient, snsClient } from '../adapters/clients';
import { documentClient } from '../adapters/document-client';
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

export const handler = createCredentialEventHandler({
  config,
  policyVersion: requireEnv(env, 'POLICY_VERSION'),
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  keysTable: requireEnv(env, 'KEYS_TABLE_NAME'),
  approvalsTable: requireEnv(env, 'APPROVALS_TABLE_NAME'),
  idempotencyTable: requireEnv(env, 'IDEMPOTENCY_TABLE_NAME'),
  topicArn: requireEnv(env, 'TOPIC_ARN'),
  governedAccountId: requireEnv(env, 'GOVERNED_ACCOUNT_ID'),
  // One account for now; organization mode will return a client for an assumed role per member account.
  iamFor: () => iam,
  dynamo,
  sns: snsClient(),
  logger: new Logger(),
  metrics: new Metrics(),
  ...(usage ? { usage } : {}),
});
