import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { GovernanceBus, type GovernanceBusProps } from '../../lib/constructs/governance-bus';

/** The bus's description, for a GovernanceBus built alone with `props` (no full stack synth). */
function descriptionOf(props: GovernanceBusProps): string {
  const stack = new Stack(new App(), 'Bus', { env: { account: '111122223333', region: 'us-east-1' } });
  new GovernanceBus(stack, 'GovernanceBus', props);
  const buses = Template.fromStack(stack).findResources('AWS::Events::EventBus');
  const [bus] = Object.values(buses) as Array<{ Properties: { Description: string } }>;
  return bus?.Properties.Description ?? '';
}

describe('GovernanceBus description', () => {
  test('says what this deployment puts on the bus: scan reports and decisions always, usage and spoke events when deployed', () => {
    expect(descriptionOf({ usage: false })).toBe(
      'Bedrock Key Guard: leaks reported by keyguard scan --quarantine; every decision recorded (DecisionEvents)',
    );
    expect(descriptionOf({})).toBe(
      'Bedrock Key Guard: leaks reported by keyguard scan --quarantine; every decision recorded (DecisionEvents); ' +
        'Bedrock API key use forwarded from every usage region',
    );
    expect(descriptionOf({ usage: false, organizationId: 'o-abcdefghij' })).toBe(
      'Bedrock Key Guard: leaks reported by keyguard scan --quarantine; every decision recorded (DecisionEvents); ' +
        'IAM credential events forwarded by the spokes',
    );
  });
});
