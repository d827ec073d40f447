import { Logger } from '@aws-lambda-powertools/logger';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import pkg from '../../package.json';
import { RETRY_POLICY } from '../adapters/clients';
import { requireEnv } from '../shared/env';
import { createDecisionEventsHandler } from './decision-events-handler';

/** Lambda entry point of the decision events (decisions table stream → governance bus). A bad environment fails the cold start. */

/** `DECISION_EVENTS_OCSF`: `true` or `false` (config decisionEvents.ocsf); anything else fails the cold start. */
function ocsfSetting(env: NodeJS.ProcessEnv): boolean {
  const v = requireEnv(env, 'DECISION_EVENTS_OCSF');
  if (v !== 'true' && v !== 'false')
    throw new Error(`DECISION_EVENTS_OCSF: got ${JSON.stringify(v)}; allowed: true, false`);
  return v === 'true';
}

export const handler = createDecisionEventsHandler({
  eventBridge: new EventBridgeClient({ ...RETRY_POLICY }),
  busArn: requireEnv(process.env, 'GOVERNANCE_BUS_ARN'),
  logger: new Logger(),
  ocsf: ocsfSetting(process.env),
  productVersion: pkg.version,
});
