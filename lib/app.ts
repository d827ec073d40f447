import { Annotations, App } from 'aws-cdk-lib';
import {
  ConfigError,
  DEFAULT_CONFIG_FILE,
  loadConfig,
  type OrganizationConfig,
} from '../lambda/shared/config';
import { STACK_NAME } from '../lambda/shared/stack';
import { GUARDRAILS_STACK_NAME, GuardrailsStack } from './guardrails-stack';
import { GOVERNANCE_REGION, KeyguardStack, RegionError } from './keyguard-stack';
import {
  MANAGEMENT_STACK_NAME,
  ManagementStack,
  SPOKE_STACK_SET_STACK_NAME,
  SpokeStackSetStack,
} from './management-stack';
import { SpokeStack, spokeRegions, spokeStackName } from './spoke-stack';
import { UsageStack, usageStackName } from './usage-stack';

/** The stack's name (and id) in every environment; shared with the CLI, which finds the stack by it. */
export { STACK_NAME };

export interface BuildAppProps {
  /**
   * CDK context, for tests; the CLI's `-c key=value` and cdk.json context reach the App on their own.
   * Keys read: `config` (policy file path), `region` (must be us-east-1), `guardrails` (`true` adds the
   * guardrails stack; see {@link GUARDRAILS_CONTEXT}).
   * @default - none beyond what the CDK CLI provides
   */
  readonly context?: Record<string, unknown>;
  /** Account to deploy to (`CDK_DEFAULT_ACCOUNT`). @default - environment-agnostic account */
  readonly account?: string;
  /** Directory in which `keyguard.config.json` is looked up. @default process.cwd() */
  readonly cwd?: string;
  /** Cloud assembly directory. @default - the CDK default (cdk.out, or the CLI's choice) */
  readonly outdir?: string;
}

/** The context key that adds the guardrails stack to the app: `npx cdk deploy -c guardrails=true BedrockKeyGuardGuardrails`. */
export const GUARDRAILS_CONTEXT = 'guardrails';

/**
 * The context key that adds organization mode's stacks deployed outside the hub: `-c management=true` adds
 * BedrockKeyGuardManagement (the Organizations reader role), BedrockKeyGuardSpokeStackSet (the spokes' StackSet) and
 * the management account's own spoke, BedrockKeyGuardSpoke (us-east-1) and BedrockKeyGuardSpoke-<region> (each other
 * usage region), which StackSets never deploy. Needs `organization` in the config and {@link HUB_ACCOUNT_CONTEXT}.
 */
export const MANAGEMENT_CONTEXT = 'management';
/** The hub's 12-digit account id, for the stacks of {@link MANAGEMENT_CONTEXT} (they name the hub's roles and bus). */
export const HUB_ACCOUNT_CONTEXT = 'hubAccount';

/** A CDK context value (`-c key=value` or cdk.json) of the wrong shape; the message names the key and the value. */
export class ContextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContextError';
  }
}

function stringContext(app: App, key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') {
    throw new ContextError(`context ${key}: got ${JSON.stringify(value)}; allowed: a string`);
  }
  return value;
}

/** `-c key=true|false` (the CLI gives a string) or a cdk.json boolean; absent is false. Anything else is an error. */
function booleanContext(app: App, key: string): boolean {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '' || value === false || value === 'false')
    return false;
  if (value === true || value === 'true') return true;
  throw new ContextError(
    `context ${key}: got ${JSON.stringify(value)}; allowed: "true" | "false" (or a boolean)`,
  );
}

/**
 * The hub's account for the management stacks: `-c hubAccount=<id>`, else `organization.hubAccountId` of the config
 * (already validated). Neither, or a context value that is not 12 digits, is a ContextError; both, differing, a
 * ContextError naming both values (which one is meant cannot be guessed: the spokes would trust the wrong account).
 */
function hubAccountOf(app: App, org: OrganizationConfig, source: string): string {
  const fromContext = stringContext(app, HUB_ACCOUNT_CONTEXT);
  const fromConfig = org.hubAccountId;
  if (fromContext === undefined && fromConfig !== undefined) return fromConfig;
  if (fromContext === undefined || !/^\d{12}$/.test(fromContext)) {
    throw new ContextError(
      `context ${HUB_ACCOUNT_CONTEXT}: got ${JSON.stringify(fromContext ?? null)}; allowed: the hub account's ` +
        `12-digit id (required with -c ${MANAGEMENT_CONTEXT}=true unless the config sets organization.hubAccountId: ` +
        "the management stacks name the hub's roles and bus)",
    );
  }
  if (fromConfig !== undefined && fromConfig !== fromContext) {
    throw new ContextError(
      `context ${HUB_ACCOUNT_CONTEXT}: got "${fromContext}", but ${source}: organization.hubAccountId is ` +
        `"${fromConfig}"; the hub account must be one: drop -c ${HUB_ACCOUNT_CONTEXT} or make them equal`,
    );
  }
  return fromContext;
}

/** Id of the synth message that says the guardrails are a step of their own (acknowledgeable: `acknowledgeInfo`). */
export const GUARDRAILS_SEPARATE_STEP = 'keyguard:guardrails-separate-step';

const GUARDRAILS_DEPLOY_COMMAND = `npx cdk deploy -c ${GUARDRAILS_CONTEXT}=true ${GUARDRAILS_STACK_NAME}`;

/** Whose credentials the guardrails step takes, per `guardrails.deploy`. */
function guardrailsCredentials(deploy: 'scp' | 'managed-policy'): string {
  return deploy === 'scp'
    ? "with the organization's management account's credentials, or a delegated administrator's for " +
        'Organizations policies (Organizations refuses CreatePolicy from any other account), in an account ' +
        'bootstrapped in us-east-1'
    : 'with the credentials of the account that should hold the managed policy (bootstrapped in us-east-1)';
}

/**
 * Composes the CDK app: reads context once, validates it (bad config -> ConfigError naming file, key and
 * value; another region -> RegionError), and builds the main stack, one usage stack per `usage.regions` entry
 * other than us-east-1 (which the main stack forwards itself), and the guardrails stack only when asked for with
 * `-c guardrails=true`. bin/app.ts and the tests both use this.
 *
 * The guardrails are a step of their own, never part of `cdk deploy --all`: an SCP can be created only by the
 * organization's management account or a delegated administrator, whose credentials are usually not the governed
 * account's; and a managed policy follows the same rule, so that what `--all` deploys never depends on
 * `guardrails.deploy`, and a deny that restrains the account's principals is always deployed on purpose. Without the
 * flag, a config that asks for guardrails gets an info message on the main stack saying how to deploy them; the flag
 * with `guardrails.deploy` `none` is a {@link ConfigError} (nothing to deploy: a typo or the wrong config file).
 */
export function buildApp(props: BuildAppProps = {}): {
  app: App;
  stack: KeyguardStack;
  usageStacks: UsageStack[];
  /** The preventive policies' stack, with `-c guardrails=true` (then `guardrails.deploy` is `scp` or `managed-policy`). */
  guardrails?: GuardrailsStack;
  /** Organization mode's stacks outside the hub, with `-c management=true`. */
  organization?: {
    management: ManagementStack;
    stackSet: SpokeStackSetStack;
    /** The management account's spoke: us-east-1 first, then each other usage region. */
    spokes: SpokeStack[];
  };
} {
  const app = new App({ context: props.context, outdir: props.outdir });

  const region = stringContext(app, 'region') ?? GOVERNANCE_REGION;
  if (region !== GOVERNANCE_REGION) throw new RegionError(region);
  const withGuardrails = booleanContext(app, GUARDRAILS_CONTEXT);
  const { config, source } = loadConfig(stringContext(app, 'config'), props.cwd);
  const { deploy } = config.guardrails;
  if (withGuardrails && deploy === 'none') {
    const where =
      source === 'defaults'
        ? `guardrails.deploy: got "none" (the default: no ${DEFAULT_CONFIG_FILE} in ${props.cwd ?? process.cwd()}; ` +
          'give one with -c config=FILE)'
        : `${source}: guardrails.deploy: got "none"`;
    throw new ConfigError(
      `${where}; -c ${GUARDRAILS_CONTEXT}=true deploys the guardrails stack, which needs guardrails.deploy ` +
        '"scp" | "managed-policy". Set it in the config, or drop the flag.',
    );
  }

  const stack = new KeyguardStack(app, STACK_NAME, {
    stackName: STACK_NAME,
    env: { account: props.account, region: GOVERNANCE_REGION },
    config,
  });

  // A region listed twice still gets one stack.
  const usageStacks = [...new Set(config.usage.regions)]
    .filter((r) => r !== GOVERNANCE_REGION)
    .map((r) => {
      const name = usageStackName(r);
      const usage = new UsageStack(app, name, {
        stackName: name,
        env: { account: props.account, region: r },
      });
      // The governance bus must exist before a region forwards to it (`cdk deploy --all` follows this order).
      usage.addStackDependency(stack);
      return usage;
    });

  // Its own stack, and only on request (see above): never part of `cdk deploy --all` or a plain `cdk synth`.
  let guardrails: GuardrailsStack | undefined;
  if (deploy !== 'none') {
    if (withGuardrails) {
      guardrails = new GuardrailsStack(app, GUARDRAILS_STACK_NAME, {
        stackName: GUARDRAILS_STACK_NAME,
        env: { account: props.account, region: GOVERNANCE_REGION },
        config,
      });
    } else {
      Annotations.of(stack).addInfoV2(
        GUARDRAILS_SEPARATE_STEP,
        `guardrails.deploy is "${deploy}": the ${GUARDRAILS_STACK_NAME} stack is not part of this deployment ` +
          `(nor of cdk deploy --all). Deploy it as a step of its own, ${guardrailsCredentials(deploy)}: ` +
          `${GUARDRAILS_DEPLOY_COMMAND} --profile <profile> (docs/commands/policy.md).`,
      );
    }
  }
  // Organization mode's other accounts: deployed on request only, each with that account's credentials.
  let organization:
    | { management: ManagementStack; stackSet: SpokeStackSetStack; spokes: SpokeStack[] }
    | undefined;
  if (booleanContext(app, MANAGEMENT_CONTEXT)) {
    const org = config.organization;
    if (!org) {
      throw new ConfigError(
        `${source === 'defaults' ? `organization (no ${DEFAULT_CONFIG_FILE} in ${props.cwd ?? process.cwd()})` : `${source}: organization`}: ` +
          `got null; -c ${MANAGEMENT_CONTEXT}=true deploys organization mode's management stacks, which need ` +
          '"organization" in the config. Set it, or drop the flag.',
      );
    }
    const hubAccountId = hubAccountOf(app, org, source);
    const orgProps = { config, organization: org, hubAccountId };
    const management = new ManagementStack(app, MANAGEMENT_STACK_NAME, {
      ...orgProps,
      stackName: MANAGEMENT_STACK_NAME,
      env: { account: props.account, region: GOVERNANCE_REGION },
    });
    const stackSet = new SpokeStackSetStack(app, SPOKE_STACK_SET_STACK_NAME, {
      ...orgProps,
      stackName: SPOKE_STACK_SET_STACK_NAME,
      env: { account: props.account, region: GOVERNANCE_REGION },
    });
    const spokes = spokeRegions(config).map((r) => {
      const name = spokeStackName(r);
      return new SpokeStack(app, name, {
        ...orgProps,
        stackName: name,
        env: { account: props.account, region: r },
      });
    });
    organization = { management, stackSet, spokes };
  }
  return {
    app,
    stack,
    usageStacks,
    ...(guardrails ? { guardrails } : {}),
    ...(organization ? { organization } : {}),
  };
}
