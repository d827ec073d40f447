import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { dynamoClient, RETRY_POLICY } from '../adapters/clients';
import { CollaborationScanState } from '../adapters/collaboration-scan-state';
import { documentClient } from '../adapters/document-client';
import { requireEnv } from '../shared/env';
import { createCollaborationScanHandler } from './collaboration-scan-handler';

/**
 * Lambda entry point of the scheduled collaboration scan (issue 15 §3). A bad environment fails the cold start.
 * The token is not in the environment: only the ARN of its secret, read at every run.
 */

const env = process.env;
const channels = env.SLACK_CHANNELS?.trim();
const lookbackHours = Number(requireEnv(env, 'SLACK_INITIAL_LOOKBACK_HOURS'));
if (!Number.isFinite(lookbackHours) || lookbackHours <= 0)
  throw new Error('environment variable SLACK_INITIAL_LOOKBACK_HOURS is not a positive number of hours');

export const handler = createCollaborationScanHandler({
  secrets: new SecretsManagerClient({ ...RETRY_POLICY }),
  slackSecretId: requireEnv(env, 'SLACK_TOKEN_SECRET_ARN'),
  slack: {
    ...(env.SLACK_API_URL?.trim() ? { apiUrl: env.SLACK_API_URL.trim() } : {}),
    ...(channels ? { channels: channels.split(',') } : {}),
    initialLookbackHours: lookbackHours,
  },
  state: new CollaborationScanState(
    documentClient(dynamoClient()),
    requireEnv(env, 'COLLABORATION_STATE_TABLE_NAME'),
    'slack',
  ),
  eventBridge: new EventBridgeClient({ ...RETRY_POLICY }),
  busArn: requireEnv(env, 'GOVERNANCE_BUS_ARN'),
  logger: new Logger(),
  metrics: new Metrics(),
});
