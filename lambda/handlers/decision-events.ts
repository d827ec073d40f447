import { Logger } from '@aws-lambda-powertools/logger';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { RETRY_POLICY } from '../adapters/clients';
import { requireEnv } from '../shared/env';
import { createDecisionEventsHandler } from './decision-events-handler';

/** Lambda entry point of the decision events (decisions table stream → governance bus). A bad environment fails the cold start. */

export const handler = createDecisionEventsHandler({
  eventBridge: new EventBridgeClient({ ...RETRY_POLICY }),
  busArn: requireEnv(process.env, 'GOVERNANCE_BUS_ARN'),
  logger: new Logger(),
});
