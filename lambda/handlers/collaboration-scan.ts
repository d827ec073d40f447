import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { dynamoClient, RETRY_POLICY } from '../adapters/clients';
import { CollaborationScanState } from '../adapters/collaboration-scan-state';
import { documentClient } from '../adapters/document-client';
import { requireEnv } from '../shared/env';
import { createConfluenceScanHandler } from './collaboration-scan-confluence';
import { createCollaborationScanHandler } from './collaboration-scan-handler';
import { createJiraScanHandler, routeCollaborationScan } from './collaboration-scan-jira';

/**
 * Lambda entry point of the scheduled collaboration scan (issue 15 §3): Slack when SLACK_TOKEN_SECRET_ARN is set,
 * Jira when JIRA_SECRET_ARN is; Confluence from its schedule's input (its settings and its secret's ARN: the
 * environment has no room left for them), checked at every run. Each schedule names its source. A bad environment
 * fails the cold start. Tokens are not in the environment: only the ARNs of their secrets, read at every run.
 */

const env = process.env;

function hours(name: string): number {
  const value = Number(requireEnv(env, name));
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`environment variable ${name} is not a positive number of hours`);
  return value;
}

const secrets = new SecretsManagerClient({ ...RETRY_POLICY });
const eventBridge = new EventBridgeClient({ ...RETRY_POLICY });
const doc = documentClient(dynamoClient());
const table = requireEnv(env, 'COLLABORATION_STATE_TABLE_NAME');
const busArn = requireEnv(env, 'GOVERNANCE_BUS_ARN');
const logger = new Logger();
const metrics = new Metrics();

const slackSecretId = env.SLACK_TOKEN_SECRET_ARN?.trim();
const channels = env.SLACK_CHANNELS?.trim();
const slack = slackSecretId
  ? createCollaborationScanHandler({
      secrets,
      slackSecretId,
      slack: {
        ...(env.SLACK_API_URL?.trim() ? { apiUrl: env.SLACK_API_URL.trim() } : {}),
        ...(channels ? { channels: channels.split(',') } : {}),
        initialLookbackHours: hours('SLACK_INITIAL_LOOKBACK_HOURS'),
      },
      state: new CollaborationScanState(doc, table, 'slack'),
      eventBridge,
      busArn,
      logger,
      metrics,
    })
  : undefined;

const jiraSecretId = env.JIRA_SECRET_ARN?.trim();
const projects = env.JIRA_PROJECTS?.trim();
const jira = jiraSecretId
  ? createJiraScanHandler({
      secrets,
      jiraSecretId,
      jira: {
        site: requireEnv(env, 'JIRA_SITE_URL'),
        ...(projects ? { projects: projects.split(',') } : {}),
        ...(env.JIRA_JQL?.trim() ? { jql: env.JIRA_JQL.trim() } : {}),
        initialLookbackHours: hours('JIRA_INITIAL_LOOKBACK_HOURS'),
      },
      state: new CollaborationScanState(doc, table, 'jira'),
      eventBridge,
      busArn,
      logger,
      metrics,
    })
  : undefined;
if (jira && !projects && !env.JIRA_JQL?.trim())
  throw new Error('JIRA_SECRET_ARN is set but neither JIRA_PROJECTS nor JIRA_JQL: nothing to scan in Jira');
// Confluence needs nothing from the environment: a run with a Confluence schedule's input scans it.
const confluence = createConfluenceScanHandler({
  secrets,
  state: new CollaborationScanState(doc, table, 'confluence'),
  eventBridge,
  busArn,
  logger,
  metrics,
});

export const handler = routeCollaborationScan({
  ...(slack ? { slack } : {}),
  ...(jira ? { jira } : {}),
  confluence,
});
