import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoApprovalsStore } from '../adapters/approvals-store';
import { cloudTrailClient, dynamoClient, iamClient, snsClient, sqsClient } from '../adapters/clients';
import { CloudTrailCreatorLookup } from '../adapters/cloudtrail-creators';
import { documentClient } from '../adapters/document-client';
import { MemberAccess } from '../adapters/member-access';
import { orgSettingsLoaderFromEnv } from '../adapters/org-settings';
import { usageStoreFromEnv } from '../adapters/usage-store';
import { CONFIG_ENV, parsePolicy } from '../shared/config';
import { MissingEnvError, requireEnv } from '../shared/env';
import { createSweepHandler } from './sweep-handler';
import { createQueueSweepHandler, type OrganizationAccess } from './sweep-queue-handler';

/**
 * Lambda entry point of the inventory sweep. Initialised once per container; a bad environment fails the cold start.
 * Single-account mode: invoked by the schedules ({} or {"continue": true}), sweeps its own account. Organization
 * mode (SWEEP_QUEUE_URL set): consumes the sweep queue, one governed account per message.
 */

const env = process.env;
const config = parsePolicy(requireEnv(env, CONFIG_ENV));
const dynamo = dynamoClient();
const iam = iamClient();
// Set by the stack only when usage.regions is not empty: absent, UNUSED is not evaluated.
const usage = usageStoreFromEnv(env, documentClient(dynamo));
const governedAccountId = requireEnv(env, 'GOVERNED_ACCOUNT_ID');

const common = {
  config,
  policyVersion: requireEnv(env, 'POLICY_VERSION'),
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  keysTable: requireEnv(env, 'KEYS_TABLE_NAME'),
  sweepStateTable: requireEnv(env, 'SWEEP_STATE_TABLE_NAME'),
  topicArn: requireEnv(env, 'TOPIC_ARN'),
  dynamo,
  sns: snsClient(),
  creators: new CloudTrailCreatorLookup(cloudTrailClient()),
  approvals: new DynamoApprovalsStore(documentClient(dynamo), requireEnv(env, 'APPROVALS_TABLE_NAME')),
  ...(usage ? { usage } : {}),
  logger: new Logger(),
  metrics: new Metrics(),
};

function organizationHandler(queueUrl: string) {
  const settings = orgSettingsLoaderFromEnv(env);
  if (!settings) throw new MissingEnvError('ORG_SETTINGS_PARAMETER');
  let access: Promise<OrganizationAccess> | null = null;
  const organization = () => {
    access ??= settings.get().then((s) => {
      const member = new MemberAccess({
        organization: s.organization,
        hubAccountId: governedAccountId,
        functionName: 'sweep',
        hubIam: iam,
      });
      return { settings: s, iamFor: member.iamFor };
    });
    // A failed read is not kept: the next message reads again.
    access.catch(() => {
      access = null;
    });
    return access;
  };
  return createQueueSweepHandler({
    ...common,
    hubAccountId: governedAccountId,
    organization,
    sqs: sqsClient(),
    queueUrl,
    maxReceiveCount: Number(requireEnv(env, 'SWEEP_MAX_RECEIVE_COUNT')),
  });
}

const queueUrl = env.SWEEP_QUEUE_URL?.trim();

export const handler = queueUrl
  ? organizationHandler(queueUrl)
  : createSweepHandler({ ...common, governedAccountId, iam });
