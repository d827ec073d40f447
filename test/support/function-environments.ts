import { join, resolve } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { Construct } from 'constructs';
import { build, writeConfig } from '../lib/helpers';
import { type CfnTemplate, resolveValue } from './cfn-values';

/**
 * Each keyguard function of the synthesized app with its entry file and the environment the template gives it,
 * intrinsics resolved: what the Lambda runtime hands an entry point at a cold start. Shared by
 * test/lib/entry-environment.test.ts (every entry loads with it) and bench/bundle.bench.ts (each bundle's cold start
 * is measured with it), so neither keeps a list of variables of its own.
 */

/**
 * The entry file of every NodejsFunction, recorded as the CDK bundles it: `Bundling.bundle(scope, { entry })` is
 * called once per function with the construct the function is created in, so a function's entry is known from
 * the construct tree without relying on descriptions or logical ids. (Loaded by path: aws-cdk-lib does not export
 * the module, and `NodejsFunction` calls it through the same file.)
 */
const bundlingModule = require(
  join(require.resolve('aws-cdk-lib'), '..', 'aws-lambda-nodejs', 'lib', 'bundling.js'),
) as { Bundling: { bundle: (scope: Construct, options: { entry: string }) => unknown } };

const REPO = resolve(__dirname, '..', '..');

/** What the Lambda runtime itself sets in every function's environment (Lambda developer guide, "Defined runtime environment variables"). */
export function runtimeVariables(region: string, functionName: string): Record<string, string> {
  return {
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
    AWS_LAMBDA_FUNCTION_NAME: functionName,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '512',
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${functionName}`,
    AWS_LAMBDA_LOG_STREAM_NAME: '2026/12/07/[$LATEST]0123456789abcdef0123456789abcdef',
    AWS_LAMBDA_RUNTIME_API: '127.0.0.1:9001',
    LAMBDA_TASK_ROOT: '/var/task',
    LAMBDA_RUNTIME_DIR: '/var/runtime',
    TZ: ':UTC',
    _HANDLER: 'index.handler',
    LANG: 'en_US.UTF-8',
    PATH: '/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin',
    // Silences the SDK's "Node 22 will be required" notice on this Node 20 test machine (see setup-env.ts); the
    // runtime is nodejs22.x, where the SDK prints nothing.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
}

export interface FunctionUnderTest {
  /** `<stack name>/<logical id>`. */
  logicalId: string;
  /** Entry file, relative to the repository root. */
  entry: string;
  /** The template's Environment.Variables, intrinsics resolved. */
  variables: Record<string, string>;
  /** The runtime's own variables for this function. */
  runtime: Record<string, string>;
}

/**
 * Synthesizes the app with a config and returns each AWS::Lambda::Function of every stack with its entry and
 * environment. A function whose entry is not known (not a NodejsFunction bundled from a file) fails, naming it.
 */
export function functionsOf(config: unknown): FunctionUnderTest[] {
  const entries = new Map<Construct, string[]>();
  const original = bundlingModule.Bundling.bundle;
  bundlingModule.Bundling.bundle = (scope, options) => {
    entries.set(scope, [...(entries.get(scope) ?? []), options.entry]);
    return original.call(bundlingModule.Bundling, scope, options);
  };
  // The guardrails stack is part of the app only with -c guardrails=true (and a config that deploys it).
  const guardrails = (config as { guardrails?: { deploy?: string } }).guardrails?.deploy ?? 'none';
  let built: ReturnType<typeof build>;
  try {
    built = build({
      context: { config: writeConfig(config), ...(guardrails === 'none' ? {} : { guardrails: 'true' }) },
    });
  } finally {
    bundlingModule.Bundling.bundle = original;
  }

  // Every stack of the app (main, usage, guardrails): a function added to any of them is found.
  const templates = new Map<Stack, CfnTemplate>();
  const found: FunctionUnderTest[] = [];
  for (const node of built.app.node.findAll()) {
    const cfn = node as unknown as { cfnResourceType?: string; node: Construct['node'] };
    if (cfn.cfnResourceType !== 'AWS::Lambda::Function') continue;
    const stack = Stack.of(node);
    let template = templates.get(stack);
    if (!template) {
      template = Template.fromStack(stack).toJSON() as CfnTemplate;
      templates.set(stack, template);
    }
    const logicalId = stack.getLogicalId(node as never);
    const name = `${stack.stackName}/${logicalId}`;
    // The CfnFunction is the NodejsFunction's `Resource`; the NodejsFunction's scope is what bundle() was given.
    const owner = cfn.node.scope?.node.scope as Construct | undefined;
    const candidates = owner ? (entries.get(owner) ?? []) : [];
    if (candidates.length !== 1) {
      throw new Error(
        `${name} (${cfn.node.path}): its entry file is not known (${candidates.length} bundled in its ` +
          'construct); every keyguard function must be a NodejsFunction with its own entry so that this test loads it',
      );
    }
    const resource = template.Resources?.[logicalId];
    const env = (resource?.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)
      ?.Variables;
    const ctx = { template, stackName: stack.stackName, region: stack.region };
    const variables = resolveValue(ctx, env ?? {}) as Record<string, string>;
    found.push({
      logicalId: name,
      entry: resolve(candidates[0] as string)
        .slice(REPO.length + 1)
        .replaceAll('\\', '/'),
      variables,
      runtime: runtimeVariables(stack.region, `${stack.stackName}-${logicalId}`.slice(0, 64)),
    });
  }
  return found;
}

/**
 * Every optional feature on: organization mode (the hub: member accounts, overrides), usage tracking (us-east-1 and
 * another region), the log quarantine, Security Hub findings, the scheduled Slack, Jira and Confluence scans, notifications, approvers,
 * guardrails.
 */
export const FULL_CONFIG = {
  organization: {
    id: 'o-abcdef0123',
    managementAccountId: '111122223333',
    targets: ['ou-ab12-cdef3456'],
    excludeAccounts: ['444455556666'],
  },
  overrides: [{ ous: ['ou-ab12-cdef3456'], mode: 'audit' }],
  mode: 'enforce',
  approvers: ['arn:aws:iam::123456789012:role/KeyApprovers'],
  usage: { regions: ['us-east-1', 'eu-west-1'] },
  leakDetection: {
    logGroups: ['/app/one', '/app/two'],
    deactivateUnverified: true,
    slack: { channels: ['general', 'C0OPS1234'] },
    jira: { siteUrl: 'https://acme.atlassian.net', projects: ['OPS'], jql: 'labels = public' },
    confluence: { siteUrl: 'https://acme.atlassian.net', spaces: ['ENG'] },
  },
  notifications: { subscriptions: [{ email: 'security@example.com', owners: ['alice', 'bob'] }] },
  guardrails: { deploy: 'scp', scpTargetIds: ['ou-ab12-cdef3456'] },
  findings: { securityHub: true },
  decisionEvents: { ocsf: true },
  fallbackOwner: 'platform-team',
};

/** The defaults: no optional feature. */
export const MINIMAL_CONFIG = {};

/** Every feature but usage tracking: the log quarantine without a usage table. */
export const NO_USAGE_CONFIG = { ...FULL_CONFIG, usage: { regions: [] } };

/** Every feature but organization mode: the functions of a single-account stack. */
export const SINGLE_ACCOUNT_CONFIG = { ...FULL_CONFIG, organization: null, overrides: [] };
