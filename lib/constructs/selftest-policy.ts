import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { SELFTEST_USER_PREFIX } from '../../lambda/shared/selftest';
import { nagResourceId } from '../nag-finding';

export interface SelftestPolicyProps {
  /** The decisions table the self-test reads its key's decision from (Query only). */
  readonly decisionsTable: dynamodb.ITable;
  /**
   * The effective-policy parameter (the deployed mode and tag keys).
   * @default - none: no ssm permission (the self-test then takes the mode from the decision)
   */
  readonly policyParameter?: ssm.IParameter;
  /**
   * The subscribed log groups (leakDetection.logGroups) `keyguard selftest --leak` may write the key to, in streams
   * named keyguard-selftest-* only.
   * @default - none: no logs permission
   */
  readonly leakLogGroups?: readonly string[];
}

/** Characters of a log group's two ARNs besides its name (prefix, account, region, stream suffix, quotes). */
const LOG_GROUP_ARN_OVERHEAD = 140;
/** Room for the named log groups' ARNs, beside the rest of the policy (about 1,600 characters). */
const LISTED_LOG_GROUPS_BUDGET = 3500;

/**
 * The managed policy `keyguard selftest` needs (stack output SelftestPolicyArn), attached to nothing: an operator
 * attaches it to whoever runs the self-test. IAM writes only on users named `keyguard-selftest-*` of this account,
 * keys only for Bedrock, reads only of the decisions table, the stack and the effective-policy parameter. The stack's
 * own roles gain nothing from it.
 */
export class SelftestPolicy extends Construct {
  public readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: SelftestPolicyProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const selftestUsers = stack.formatArn({
      service: 'iam',
      region: '',
      resource: 'user',
      resourceName: `${SELFTEST_USER_PREFIX}*`,
    });
    const statements = [
      new iam.PolicyStatement({
        sid: 'SelftestUsers',
        // CreateUser with tags needs TagUser too; ListUserTags tells a leftover self-test user by its tag;
        // ListServiceSpecificCredentials finds a user's keys before deleting them and reads the key's status.
        actions: [
          'iam:CreateUser',
          'iam:TagUser',
          'iam:ListUserTags',
          'iam:DeleteUser',
          'iam:ListServiceSpecificCredentials',
        ],
        resources: [selftestUsers],
      }),
      new iam.PolicyStatement({
        sid: 'SelftestBedrockKeys',
        actions: ['iam:CreateServiceSpecificCredential', 'iam:DeleteServiceSpecificCredential'],
        resources: [selftestUsers],
        conditions: { StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' } },
      }),
      new iam.PolicyStatement({
        sid: 'FindLeftoverUsers',
        actions: ['iam:ListUsers'],
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        sid: 'ReadDecisions',
        actions: ['dynamodb:Query'],
        resources: [props.decisionsTable.tableArn],
      }),
      new iam.PolicyStatement({
        sid: 'ReadStackOutputs',
        actions: ['cloudformation:DescribeStacks'],
        // This stack's own ARN (AWS::StackId): no other stack.
        resources: [stack.stackId],
      }),
      ...(props.policyParameter
        ? [
            new iam.PolicyStatement({
              sid: 'ReadEffectivePolicy',
              actions: ['ssm:GetParameter'],
              resources: [props.policyParameter.parameterArn],
            }),
          ]
        : []),
    ];
    const groups = props.leakLogGroups ?? [];
    const groupStreams = (group: string, stream: string) =>
      stack.formatArn({
        service: 'logs',
        resource: 'log-group',
        resourceName: `${group}:${stream}`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    // Each group named when their ARNs fit (a managed policy holds 6,144 characters; 50 groups of up to 512
    // characters do not): else any group of this account and region, streams still keyguard-selftest-* only.
    const listed =
      groups.reduce((n, g) => n + 2 * g.length + LOG_GROUP_ARN_OVERHEAD, 0) <= LISTED_LOG_GROUPS_BUDGET;
    const named = listed ? groups : ['*'];
    const createStream = groups.length > 0 ? named.map((g) => groupStreams(g, '*')) : [];
    const selftestStreams =
      groups.length > 0 ? named.map((g) => groupStreams(g, `log-stream:${SELFTEST_USER_PREFIX}*`)) : [];
    if (groups.length > 0) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'LeakTestStream',
          // --leak: one stream per run in a subscribed group (the key written there is what the leak function catches).
          actions: ['logs:CreateLogStream'],
          resources: createStream,
        }),
        new iam.PolicyStatement({
          sid: 'LeakTestLine',
          actions: ['logs:PutLogEvents', 'logs:DeleteLogStream'],
          resources: selftestStreams,
        }),
      );
    }
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      description:
        'Bedrock Key Guard self-test (keyguard selftest): throwaway users keyguard-selftest-* with a Bedrock API key, ' +
        'the decisions table read. Attach to whoever runs the self-test, in a sandbox account.',
      statements,
    });
    Validations.of(this.policy).acknowledge(
      {
        id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, selftestUsers)}]`,
        reason:
          'Self-test users get a random suffix (keyguard-selftest-<8 hex>) so that runs never collide; the wildcard ' +
          'is that suffix only, and Bedrock keys are further limited by iam:ServiceSpecificCredentialServiceName.',
      },
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'iam:ListUsers has no resource-level permissions (IAM Service Authorization Reference): it lists user ' +
          'names only, read to find self-test users left by an earlier run; every write stays on keyguard-selftest-*.',
      },
      ...createStream.map((arn) => ({
        id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, arn)}]`,
        reason: listed
          ? 'CreateLogStream is authorized on the log group ARN with its ":*" suffix; only in a group the config ' +
            'subscribes to the leak function (leakDetection.logGroups), for selftest --leak.'
          : 'The subscribed log groups are too many or too long to name within the 6,144 characters of a managed ' +
            'policy: any group of this account and region, for an empty stream (no read, no other write).',
      })),
      ...selftestStreams.map((arn) => ({
        id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, arn)}]`,
        reason:
          'Self-test streams get a random suffix (keyguard-selftest-<8 hex>); writes and deletes stay in those ' +
          'streams of the subscribed groups.',
      })),
    );
  }
}
