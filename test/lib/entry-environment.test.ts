import { join, resolve } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { Construct } from 'constructs';
import { type CfnTemplate, resolveValue } from '../support/cfn-values';
import { build, writeConfig } from './helpers';

/**
 * Each Lambda entry point (lambda/handlers/*.ts, the files the functions are bundled from) is loaded with the
 * environment the synthesized template gives its function, the way the Lambda runtime loads it at a cold start:
 * a variable name misspelt in an entry file, or one the stack stops giving, fails its cold start here instead of
 * in the account. The variables come from the template only (never from a list in this file), so the test follows
 * whatever the stack gives each function.
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

// Three syntheses and a few dozen isolated loads take tens of seconds on a loaded machine: a generous limit against
// a hang, not a performance assertion.
jest.setTimeout(300_000);

const ENV_MODULE = '../../lambda/shared/env';
const REPO = resolve(__dirname, '..', '..');

/** What the Lambda runtime itself sets in every function's environment (Lambda developer guide, "Defined runtime environment variables"). */
function runtimeVariables(region: string, functionName: string): Record<string, string> {
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

/** Variables the function is given that Node.js itself reads at process start, never the module. */
const READ_BY_NODE = new Set(['NODE_OPTIONS']);

interface FunctionUnderTest {
  logicalId: string;
  /** Entry file, relative to the repository root. */
  entry: string;
  /** The template's Environment.Variables, intrinsics resolved. */
  variables: Record<string, string>;
  /** The runtime's own variables for this function. */
  runtime: Record<string, string>;
}

/**
 * Synthesizes the app with a config and returns each AWS::Lambda::Function of the main stack with its entry and
 * environment. A function whose entry is not known (not a NodejsFunction bundled from a file) fails, naming it.
 */
function functionsOf(config: unknown): FunctionUnderTest[] {
  const entries = new Map<Construct, string[]>();
  const original = bundlingModule.Bundling.bundle;
  const spy = jest.spyOn(bundlingModule.Bundling, 'bundle').mockImplementation((scope, options) => {
    entries.set(scope, [...(entries.get(scope) ?? []), options.entry]);
    return original.call(bundlingModule.Bundling, scope, options);
  });
  // The guardrails stack is part of the app only with -c guardrails=true (and a config that deploys it).
  const guardrails = (config as { guardrails?: { deploy?: string } }).guardrails?.deploy ?? 'none';
  let built: ReturnType<typeof build>;
  try {
    built = build({
      context: { config: writeConfig(config), ...(guardrails === 'none' ? {} : { guardrails: 'true' }) },
    });
  } finally {
    spy.mockRestore();
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

interface LoadResult {
  handler: unknown;
  error: unknown;
  /** Every variable name the module (and what it loads) looked up. */
  read: Set<string>;
  /** Every name passed to requireEnv, in order. */
  required: string[];
}

/**
 * Loads an entry file in a module registry of its own, with exactly `env` as process.env, recording which names
 * are read and which go through requireEnv (the real one: the wrapper only records). AWS SDK clients are
 * constructed for real; constructing one makes no call.
 */
function loadEntry(entry: string, env: Record<string, string>): LoadResult {
  const read = new Set<string>();
  const required: string[] = [];
  const saved = process.env;
  process.env = new Proxy(
    { ...env },
    {
      get(target, key) {
        if (typeof key === 'string') read.add(key);
        return Reflect.get(target, key);
      },
      has(target, key) {
        if (typeof key === 'string') read.add(key);
        return Reflect.has(target, key);
      },
    },
  );
  let handler: unknown;
  let error: unknown;
  try {
    jest.isolateModules(() => {
      jest.doMock(ENV_MODULE, () => {
        const actual = jest.requireActual(ENV_MODULE) as typeof import('../../lambda/shared/env');
        return {
          ...actual,
          requireEnv: (e: NodeJS.ProcessEnv, name: string) => {
            required.push(name);
            return actual.requireEnv(e, name);
          },
        };
      });
      try {
        handler = (require(join(REPO, entry)) as { handler?: unknown }).handler;
      } catch (err) {
        error = err;
      }
    });
  } finally {
    jest.dontMock(ENV_MODULE);
    process.env = saved;
  }
  return { handler, error, read, required };
}

/**
 * Every optional feature on: organization mode (the hub: member accounts, overrides), usage tracking (us-east-1 and
 * another region), the log quarantine, notifications, approvers, guardrails.
 */
const FULL_CONFIG = {
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
  leakDetection: { logGroups: ['/app/one', '/app/two'], deactivateUnverified: true },
  notifications: { subscriptions: [{ email: 'security@example.com', owners: ['alice', 'bob'] }] },
  guardrails: { deploy: 'scp', scpTargetIds: ['ou-ab12-cdef3456'] },
  fallbackOwner: 'platform-team',
};

/** The defaults: no optional feature. */
const MINIMAL_CONFIG = {};

/** Every feature but usage tracking: the log quarantine without a usage table. */
const NO_USAGE_CONFIG = { ...FULL_CONFIG, usage: { regions: [] } };

/** Every feature but organization mode: the functions of a single-account stack. */
const SINGLE_ACCOUNT_CONFIG = { ...FULL_CONFIG, organization: null, overrides: [] };

let full: FunctionUnderTest[];
let minimal: FunctionUnderTest[];
let variants: FunctionUnderTest[][];

beforeAll(() => {
  full = functionsOf(FULL_CONFIG);
  minimal = functionsOf(MINIMAL_CONFIG);
  variants = [minimal, functionsOf(NO_USAGE_CONFIG), functionsOf(SINGLE_ACCOUNT_CONFIG)];
});

/**
 * Variables that some valid config does not give this function (given with every feature on, absent in a config
 * with fewer features that still has the function). The entry loads without them in those configs (the variants
 * are loaded above), but not necessarily alone: variables come in sets (organization mode gives several), so
 * removing one of a set is no environment a template gives. Every other variable is given in every config.
 */
function conditional(fn: FunctionUnderTest): Set<string> {
  const absent = new Set<string>();
  for (const variant of variants) {
    const other = variant.find((m) => m.logicalId === fn.logicalId);
    if (!other) continue;
    for (const k of Object.keys(fn.variables)) if (!(k in other.variables)) absent.add(k);
  }
  return absent;
}

describe('Lambda entry points load with the environment the template gives them', () => {
  test('every keyguard function of the app is found, each with its own entry under lambda/handlers/', () => {
    // Assess: seven with every feature (five always, key-usage and leak with usage and log groups); a new function
    // is picked up without changing this test.
    expect(full.length).toBeGreaterThanOrEqual(7);
    expect(minimal.length).toBeGreaterThanOrEqual(5);
    for (const fn of [...full, ...minimal]) expect(fn.entry).toMatch(/^lambda\/handlers\/[\w-]+\.ts$/);
    const entries = full.map((f) => f.entry);
    expect(new Set(entries).size).toBe(entries.length);
    expect(entries).toEqual(
      expect.arrayContaining([
        'lambda/handlers/credential-event.ts',
        'lambda/handlers/sweep.ts',
        'lambda/handlers/leak.ts',
        'lambda/handlers/key-usage.ts',
        'lambda/handlers/audit-archive.ts',
        'lambda/handlers/audit-digest.ts',
        'lambda/handlers/approval.ts',
      ]),
    );
  });

  test.each([
    ['every optional feature on', () => full],
    ['the defaults', () => minimal],
    ['every feature but usage tracking', () => variants[1] ?? []],
    ['every feature but organization mode', () => variants[2] ?? []],
  ])(
    'with %s, each entry loads, exports a handler function and reads every variable it is given',
    (_name, functions) => {
      for (const fn of functions()) {
        // Act
        const loaded = loadEntry(fn.entry, { ...fn.runtime, ...fn.variables });
        // Assess: a variable given but never read is a name the entry misspells where it tolerates absence.
        if (loaded.error)
          throw new Error(`${fn.entry} (${fn.logicalId}) failed to load: ${String(loaded.error)}`);
        const unread = Object.keys(fn.variables).filter((k) => !READ_BY_NODE.has(k) && !loaded.read.has(k));
        expect({ entry: fn.entry, handler: typeof loaded.handler, unread }).toEqual({
          entry: fn.entry,
          handler: 'function',
          unread: [],
        });
      }
    },
  );

  test('removing any variable the entry requires fails its cold start with MissingEnvError naming it', () => {
    let checked = 0;
    for (const fn of full) {
      // Prepare: the names the entry passes to requireEnv with the full environment.
      const env = { ...fn.runtime, ...fn.variables };
      const { required } = loadEntry(fn.entry, env);
      const optional = conditional(fn);
      for (const name of new Set(required)) {
        if (!(name in fn.variables) || optional.has(name)) continue;
        const { [name]: _removed, ...without } = env;
        // Act
        const loaded = loadEntry(fn.entry, without);
        // Assess
        expect({ entry: fn.entry, removed: name, error: errorShape(loaded.error) }).toEqual({
          entry: fn.entry,
          removed: name,
          error: { name: 'MissingEnvError', variable: name },
        });
        checked += 1;
      }
    }
    // Every pipeline function requires its tables, topic and account: the removal loop must have run many times.
    expect(checked).toBeGreaterThanOrEqual(full.length * 2);
  });
});

function errorShape(err: unknown): { name: string; variable?: unknown } | null {
  if (err === undefined) return null;
  if (err instanceof Error) return { name: err.name, variable: (err as { variable?: unknown }).variable };
  return { name: String(err) };
}
