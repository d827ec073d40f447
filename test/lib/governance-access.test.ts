import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import { build, writeConfig } from './helpers';

// Prepare (shared): the composition with usage tracked, so the credential-event, sweep and key-usage functions exist.
const { stack } = build({ context: { config: writeConfig({ usage: { regions: ['eu-west-1'] } }) } });

/** The acknowledgements recorded on a construct: rule id -> reason. */
function acknowledgementsOf(construct: IConstruct): Record<string, string> {
  return Object.assign(
    {},
    ...construct.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .map((m) => m.data as Record<string, string>),
  );
}

/** The IAM policies (constructs) that grant iam:UpdateServiceSpecificCredential. */
const updaters = stack.node
  .findAll()
  .filter(
    (c): c is iam.Policy =>
      c instanceof iam.Policy &&
      JSON.stringify(Stack.of(c).resolve(c.document)).includes('iam:UpdateServiceSpecificCredential'),
  );

describe('the acknowledgement of iam:UpdateServiceSpecificCredential (issue 11 item 13)', () => {
  test('covers the credential-event, sweep, key-usage and leak policies', () => {
    // Assess (the leak function is in every deployment: it decides keyguard scan reports, issue 15)
    expect(updaters.map((p) => p.node.path.split('/')[1]).sort()).toEqual([
      'CredentialEventFunction',
      'InventorySweep',
      'KeyUsageFunction',
      'LeakQuarantine',
    ]);
  });

  test.each(updaters.map((p) => [p.node.path, p] as const))(
    '%s: says it also allows reactivation, why no condition can prevent it, and what watches it',
    (_path, policy) => {
      // Act
      const [reason, ...others] = Object.entries(acknowledgementsOf(policy))
        .filter(([id]) => id.includes('AwsSolutions-IAM5[Resource::') && id.includes(':user/*]'))
        .map(([, r]) => r);
      // Assess
      expect(others).toEqual([]);
      expect(reason).toContain('iam:ServiceSpecificCredentialServiceName = bedrock.amazonaws.com');
      expect(reason).toContain('also allows reactivation (Status=Active)');
      expect(reason).toContain('IAM has no condition key for the requested status');
      expect(reason).toContain('only ever sends Status=Inactive');
      expect(reason).toContain('credential-event rule');
      expect(reason).toContain('REACTIVATED_WITHOUT_APPROVAL');
      expect(reason).toContain('sweep');
    },
  );
});
