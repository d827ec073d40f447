import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SecurityHubClient } from '@aws-sdk/client-securityhub';
import { dynamoClient, RETRY_POLICY } from '../adapters/clients';
import { documentClient } from '../adapters/document-client';
import { DynamoFindingsState } from '../adapters/findings-state';
import { requireEnv } from '../shared/env';
import { createSecurityHubFindingsHandler } from './security-hub-findings-handler';

/** Lambda entry point of the Security Hub findings (decision events → BatchImportFindings). A bad environment fails the cold start. */

const env = process.env;
export const handler = createSecurityHubFindingsHandler({
  securityHub: new SecurityHubClient({ ...RETRY_POLICY }),
  state: new DynamoFindingsState(
    documentClient(dynamoClient()),
    requireEnv(env, 'FINDINGS_STATE_TABLE_NAME'),
  ),
  target: {
    partition: requireEnv(env, 'SECURITY_HUB_PARTITION'),
    region: requireEnv(env, 'AWS_REGION'),
    accountId: requireEnv(env, 'SECURITY_HUB_ACCOUNT_ID'),
  },
  logger: new Logger(),
  metrics: new Metrics(),
});
