import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { sqsClient } from '../adapters/clients';
import { orgSettingsLoaderFromEnv } from '../adapters/org-settings';
import { listGovernedAccounts, organizationsClient } from '../adapters/organizations';
import { MissingEnvError, requireEnv } from '../shared/env';
import { createOrgSweepScheduler } from './org-sweep-handler';

/**
 * Lambda entry point of the organization sweep scheduler: on the sweep schedule, one message per governed account
 * on the sweep queue. Initialised once per container; a bad environment fails the cold start.
 */

const env = process.env;
const hubAccountId = requireEnv(env, 'GOVERNED_ACCOUNT_ID');
const settings = orgSettingsLoaderFromEnv(env);
if (!settings) throw new MissingEnvError('ORG_SETTINGS_PARAMETER');
// Through the management account's reader role (ORG_READER_ROLE_ARN), or directly as the delegated administrator.
const org = organizationsClient(env, 'keyguard-org-sweep');

export const handler = createOrgSweepScheduler({
  listAccounts: async () => {
    const { organization } = await settings.get();
    return listGovernedAccounts(org, {
      targets: organization.targets,
      excludeAccounts: organization.excludeAccounts,
      hubAccountId,
    });
  },
  sqs: sqsClient(),
  queueUrl: requireEnv(env, 'SWEEP_QUEUE_URL'),
  logger: new Logger(),
  metrics: new Metrics(),
});
