import { App } from 'aws-cdk-lib';
import { loadConfig } from '../lambda/shared/config';
import { GUARDRAILS_STACK_NAME, GuardrailsStack } from './guardrails-stack';
import { GOVERNANCE_REGION, KeyguardStack, RegionError } from './keyguard-stack';
import { UsageStack, usageStackName } from './usage-stack';

/** The stack's name (and id) in every environment. */
export const STACK_NAME = 'BedrockKeyGuard';

export interface BuildAppProps {
  /**
   * CDK context, for tests; the CLI's `-c key=value` and cdk.json context reach the App on their own.
   * Keys read: `config` (policy file path), `region` (must be us-east-1).
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

function stringContext(app: App, key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') {
    throw new Error(`context ${key}: got ${JSON.stringify(value)}; allowed: a string`);
  }
  return value;
}

/**
 * Composes the CDK app: reads context once, validates it (bad config -> ConfigError naming file, key and
 * value; another region -> RegionError), and builds the main stack, one usage stack per `usage.regions` entry
 * other than us-east-1 (which the main stack forwards itself), and the guardrails stack when one is deployed. bin/app.ts and the tests both use this.
 */
export function buildApp(props: BuildAppProps = {}): {
  app: App;
  stack: KeyguardStack;
  usageStacks: UsageStack[];
  /** The preventive policies' stack, when `guardrails.deploy` is `scp` or `managed-policy`. */
  guardrails?: GuardrailsStack;
} {
  const app = new App({ context: props.context, outdir: props.outdir });

  const region = stringContext(app, 'region') ?? GOVERNANCE_REGION;
  if (region !== GOVERNANCE_REGION) throw new RegionError(region);
  const { config } = loadConfig(stringContext(app, 'config'), props.cwd);

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

  // Its own stack: an SCP must be deployed with the organization's management (or delegated administrator)
  // account's credentials, which are usually not the governed account's.
  const guardrails =
    config.guardrails.deploy === 'none'
      ? undefined
      : new GuardrailsStack(app, GUARDRAILS_STACK_NAME, {
          stackName: GUARDRAILS_STACK_NAME,
          env: { account: props.account, region: GOVERNANCE_REGION },
          config,
        });
  return { app, stack, usageStacks, ...(guardrails ? { guardrails } : {}) };
}
