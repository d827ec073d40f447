import { Stack, Validations } from 'aws-cdk-lib';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { type Config, type OrganizationConfig, orgSettings } from '../../lambda/shared/config';
import { nagResourceId } from '../nag-finding';
import { CredentialEventRule } from './credential-event-rule';
import {
  HUB_ROLE_NAMES,
  HUB_SCHEDULER_ROLE_NAME,
  type HubDecider,
  ORG_READER_ROLE_NAME,
  roleArn,
} from './org-roles';

/** The SSM parameter that holds the organization settings (JSON of orgSettings(config)). */
export const ORG_SETTINGS_PARAMETER_NAME = '/bedrock-key-guard/organization-settings';

/** Env names the hub functions read in organization mode (lambda/adapters/org-settings.ts, organizations.ts). */
export const ORG_SETTINGS_PARAMETER_ENV = 'ORG_SETTINGS_PARAMETER';
export const ORG_READER_ROLE_ARN_ENV = 'ORG_READER_ROLE_ARN';

/** A hub function that decides or sweeps, and its execution role. */
export interface HubDecidingFunction {
  readonly function: lambda.Function;
  readonly role: iam.IRole;
}

export interface OrgHubProps {
  readonly config: Config;
  readonly organization: OrganizationConfig;
  /** The governance bus (with its organization resource policy). */
  readonly bus: events.IEventBus;
  /** The credential-event function: the forwarded IAM events' target. */
  readonly credentialEventFunction: lambda.IFunction;
  /** The functions that act in member accounts, by kind (org-roles.ts hubDeciders). */
  readonly deciders: Partial<Record<HubDecider, HubDecidingFunction>>;
}

/**
 * The hub's organization-mode additions:
 * - a rule on the governance bus that passes forwarded IAM credential events (the same pattern as the default-bus
 *   rule, source aws.iam: no member can put such an event itself) to the credential-event function, with its DLQ;
 * - the SSM parameter of the organization settings (orgSettings(config)), named in ORG_SETTINGS_PARAMETER;
 * - for each deciding function: a fixed role name (the member and reader roles, in other accounts, trust it by ARN),
 *   ssm:GetParameter on that parameter, sts:AssumeRole on the member role of accounts of the organization only
 *   (aws:ResourceOrgID) and, for those that read the organization (all but the sweep, whose queue message carries
 *   the account's OU path), on the management account's reader role (ORG_READER_ROLE_ARN).
 */
export class OrgHub extends Construct {
  public readonly forwardedCredentialEventRule: CredentialEventRule;
  public readonly settings: ssm.StringParameter;
  /** The management account's Organizations reader role the functions assume. */
  public readonly readerRoleArn: string;

  constructor(scope: Construct, id: string, props: OrgHubProps) {
    super(scope, id);
    const org = props.organization;

    this.forwardedCredentialEventRule = new CredentialEventRule(this, 'ForwardedCredentialEventRule', {
      target: props.credentialEventFunction,
      eventBus: props.bus,
    });

    const settings = orgSettings(props.config);
    this.settings = new ssm.StringParameter(this, 'Settings', {
      parameterName: ORG_SETTINGS_PARAMETER_NAME,
      description:
        'Bedrock Key Guard organization settings (organization, overrides), read by the hub functions',
      stringValue: JSON.stringify(settings),
      // Standard parameters hold 4 KB; the largest settings the schema accepts need up to 8 KB (advanced), which
      // Intelligent-Tiering picks only when the value needs it.
      tier: ssm.ParameterTier.INTELLIGENT_TIERING,
    });

    this.readerRoleArn = roleArn(this, org.managementAccountId, ORG_READER_ROLE_NAME);
    const anyMemberRole = Stack.of(this).formatArn({
      service: 'iam',
      region: '',
      account: '*',
      resource: 'role',
      resourceName: org.memberRoleName,
    });

    for (const [kind, decider] of Object.entries(props.deciders) as Array<
      [HubDecider, HubDecidingFunction]
    >) {
      if (!(decider.role instanceof iam.Role)) {
        throw new Error(`OrgHub: the ${kind} function's role must be an iam.Role created by the stack`);
      }
      // A fixed name: spokes and the management stack trust this role by its exact ARN, from other accounts.
      (decider.role.node.defaultChild as iam.CfnRole).roleName = HUB_ROLE_NAMES[kind];
      decider.function.addEnvironment(ORG_SETTINGS_PARAMETER_ENV, this.settings.parameterName);
      // The sweep never reads Organizations: its queue message carries the account's OU path.
      const readsOrganization = kind !== 'sweep';
      if (readsOrganization) decider.function.addEnvironment(ORG_READER_ROLE_ARN_ENV, this.readerRoleArn);
      const policy = new iam.Policy(this, `${kind}Access`, {
        statements: [
          new iam.PolicyStatement({
            sid: 'ReadOrganizationSettings',
            actions: ['ssm:GetParameter'],
            resources: [this.settings.parameterArn],
          }),
          new iam.PolicyStatement({
            sid: 'AssumeMemberRolesOfTheOrganization',
            actions: ['sts:AssumeRole'],
            resources: [anyMemberRole],
            conditions: { StringEquals: { 'aws:ResourceOrgID': org.id } },
          }),
          ...(readsOrganization
            ? [
                new iam.PolicyStatement({
                  sid: 'AssumeOrganizationsReader',
                  actions: ['sts:AssumeRole'],
                  resources: [this.readerRoleArn],
                }),
              ]
            : []),
          // The leak function finds the account a short-term key was signed in from its access key id.
          ...(kind === 'leak'
            ? [
                new iam.PolicyStatement({
                  sid: 'AccountOfShortTermKeySigners',
                  actions: ['sts:GetAccessKeyInfo'],
                  resources: ['*'],
                }),
              ]
            : []),
        ],
      });
      decider.role.attachInlinePolicy(policy);
      Validations.of(policy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyMemberRole)}]`,
        reason:
          `The member role (${org.memberRoleName}) exists in every governed account, and accounts join the ` +
          'organization without a redeploy (StackSet automatic deployment): the account cannot be named in advance. ' +
          `Only that role name, and only in accounts of the organization (aws:ResourceOrgID = ${org.id}); each ` +
          "member role's trust policy names this role's exact ARN as well.",
      });
      if (kind === 'leak') {
        Validations.of(policy).acknowledge({
          id: 'AwsSolutions-IAM5[Resource::*]',
          reason:
            'sts:GetAccessKeyInfo (which account a leaked short-term key was signed in, from its access key id) has ' +
            'no resource type: STS authorizes it on "*" only. It returns an account id and nothing else.',
        });
      }
    }
  }

  /**
   * Names the organization sweep's scheduler role `BedrockKeyGuard-SweepScheduler`, the name the management account's
   * reader role trusts (org-roles.ts readerTrustedRoleArns). Its grants (sts:AssumeRole on the reader role,
   * ORG_READER_ROLE_ARN) are the org sweep construct's own.
   */
  public addOrganizationsReader(role: iam.IRole): void {
    if (!(role instanceof iam.Role))
      throw new Error('OrgHub: the scheduler role must be an iam.Role created by the stack');
    (role.node.defaultChild as iam.CfnRole).roleName = HUB_SCHEDULER_ROLE_NAME;
  }
}
