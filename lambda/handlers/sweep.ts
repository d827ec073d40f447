import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoApprovalsStore } from '../adapters/approvals-store';
import { cloudTrailClient, dynamoClient, iamClient, snsClient } from '../adapters/clients';
import { CloudTrailCreatorLookup } from '../adapters/cloudtrail-creators';
import { documentClient } from '../adapters/document-client';
import { usageStoreFromEnv } from '../adapters/usage-store';
import { CONFIG_ENV, parsePolicy } from '../shared/config';
import { requireEnv } from '../shared/env';
import { createSweepHandler } from './sweep-handler';

/** Lambda entry point of the inventory sweep. Initialised once per container; a bad environment fails the cold start. */

const env = process.env;
const config = parsePolicy(requireEnv(env, CONFIG_ENV));
const dynamo = dynamoClient();
// Set by the stack only when usage.regions is not empty: absent, UNUSED is not evaluated.
const usage = usageStoreFromEnv(env, documentClient(dynamo));

export const handler = createSweepHandler({
  config,
  policyVersion: requireEnv(env, 'POLICY_VERSION'),
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  keysTable: requireEnv(env, 'KEYS_TABLE_NAME'),
  sweepStateTable: requireEnv(env, 'SWEEP_STATE_TABLE_NAME'),
  topicArn: requireEnv(env, 'TOPIC_ARN'),
  governedAccountId: requireEnv(env, 'GOVERNED_ACCOUNT_ID'),
  iam: iamClient(),
  dynamo,
  sns: snsClient(),
  creators: new CloudTrailCreatorLookup(cloudTrailClient()),
  approvals: new DynamoApprovalsStore(documentClient(dynamo), requireEnv(env, 'APPROVALS_TABLE_NAME')),
  ...(usage ? { usage } : {}),
  logger: new Logger(),
  metrics: new Metrics(),
});
