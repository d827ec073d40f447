import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { DecisionEvents } from '../../lib/constructs/decision-events';
import { GovernanceBus } from '../../lib/constructs/governance-bus';
import { OwnerAlerts } from '../../lib/constructs/owner-alerts';
import { NO_BUNDLING, resourcesOf } from './helpers';

/** DecisionEvents with `ocsf` (config decisionEvents.ocsf, issue 16 item 3): the function is told, nothing else changes. */
function decisionEventsFunctionEnv(ocsf: boolean | undefined): Record<string, unknown> {
  const stack = new Stack(new App({ context: NO_BUNDLING }), 'Events', {
    env: { account: '111122223333', region: 'us-east-1' },
  });
  const table = new dynamodb.Table(stack, 'Decisions', {
    partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
    sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
    stream: dynamodb.StreamViewType.NEW_IMAGE,
  });
  const bus = new GovernanceBus(stack, 'GovernanceBus', { usage: false });
  const alerts = new OwnerAlerts(stack, 'OwnerAlerts', { subscriptions: [] });
  new DecisionEvents(stack, 'DecisionEvents', {
    decisionsTable: table,
    bus: bus.bus,
    topic: alerts.topic,
    ...(ocsf === undefined ? {} : { ocsf }),
  });
  const fns = Object.values(resourcesOf(Template.fromStack(stack), 'AWS::Lambda::Function')).filter((f) =>
    JSON.stringify(f.Properties.Environment ?? {}).includes('GOVERNANCE_BUS_ARN'),
  );
  expect(fns).toHaveLength(1);
  const [fn] = fns;
  if (fn === undefined) throw new Error('no decision-events function in the template');
  return (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
}

describe('DecisionEvents ocsf', () => {
  it('tells the function DECISION_EVENTS_OCSF=true when on, false when off or left out', () => {
    expect(decisionEventsFunctionEnv(true).DECISION_EVENTS_OCSF).toBe('true');
    expect(decisionEventsFunctionEnv(false).DECISION_EVENTS_OCSF).toBe('false');
    expect(decisionEventsFunctionEnv(undefined).DECISION_EVENTS_OCSF).toBe('false');
  });
});
