import { statSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import type { CloudFormationStackArtifact } from 'aws-cdk-lib/cx-api';
import { type ConfigInput, ConfigSchema, parseConfig } from '../../lambda/shared/config';
import { scheduleProblem } from '../../lambda/shared/schedule';
import { buildApp, STACK_NAME } from '../../lib/app';
import { GUARDRAILS_STACK_NAME, GuardrailsStack } from '../../lib/guardrails-stack';
import { KeyguardStack } from '../../lib/keyguard-stack';
import {
  type CfnTemplate,
  iamPolicyChars,
  jsonBytes,
  lambdaEnvironmentBytes,
  type ResolveContext,
  resolveValue,
} from '../support/cfn-values';
import { ARRAY_PATHS, arrayAt, largestConfig, maxAt, schemaPaths, valuesAt } from '../support/largest-config';
import { emptyDir, NO_BUNDLING, writeConfig } from './helpers';

/**
 * The deployability check: the app synthesized with the largest config the schema accepts
 * (test/support/largest-config.ts) stays within every documented AWS limit below, so any config `cdk synth`
 * accepts is one `cdk deploy` accepts too. Each limit names its source. Values that CloudFormation resolves at
 * deploy time (table names, ARNs, URLs) are measured at their longest (test/support/cfn-values.ts).
 */

// Synthesizing the largest config (40 usage regions, every list full) takes tens of seconds on a loaded machine: a
// generous limit against a hang, not a performance assertion.
jest.setTimeout(300_000);

// `expect.toBeWithin(floor, ceiling)`: floor <= value < ceiling (an asymmetric matcher, so a failure shows the figure).
expect.extend({
  toBeWithin(received: unknown, floor: number, ceiling: number) {
    const pass = typeof received === 'number' && received >= floor && received < ceiling;
    return { pass, message: () => `expected ${String(received)} to be within [${floor}, ${ceiling})` };
  },
});
declare global {
  namespace jest {
    interface Expect {
      toBeWithin(floor: number, ceiling: number): unknown;
    }
    interface Matchers<R> {
      toBeWithin(floor: number, ceiling: number): R;
    }
  }
}

// --- AWS's limits, each with its source --------------------------------------------------------------------------

/** CloudFormation quotas ("Understand CloudFormation quotas", CloudFormation User Guide): template body in an S3 object (the CDK uploads templates to its assets bucket). */
const TEMPLATE_BODY_S3_BYTES = 1024 * 1024;
/** Same page: resources, outputs and parameters declared in one template. */
const TEMPLATE_RESOURCES = 500;
const TEMPLATE_OUTPUTS = 200;
const TEMPLATE_PARAMETERS = 200;
/** IAM and AWS STS quotas (IAM User Guide), IAM and STS character limits: white space not counted. Role trust policy length (default quota). */
const IAM_TRUST_POLICY_CHARS = 2048;
/** Same page: "Role policy size cannot exceed 10,240 characters" (the aggregate of a role's inline policies). */
const IAM_ROLE_INLINE_CHARS = 10240;
/** Same page: "Each managed policy cannot exceed 6,144 characters". */
const IAM_MANAGED_POLICY_CHARS = 6144;
/**
 * Same page, IAM name requirements: "Policy documents can contain only the following Unicode characters: horizontal
 * tab (U+0009), linefeed (U+000A), carriage return (U+000D), and characters in the range U+0020 to U+00FF."
 */
const IAM_POLICY_CHARACTERS = /^[\t\n\r\u0020-\u00ff]*$/;
/** Quotas and service limits of AWS Organizations (Organizations User Guide), maximum size of a policy document: service control policy 5,120 characters. */
const SCP_CHARS = 5120;
/** Lambda quotas (Lambda Developer Guide): function resource-based policy 20 KB (re:Post "The final policy size is bigger than the limit": 20 KB, not adjustable). */
const LAMBDA_RESOURCE_POLICY_BYTES = 20 * 1024;
/** Lambda quotas: "Function environment variables: 4 KB, for all environment variables associated with the function, in aggregate". */
const LAMBDA_ENVIRONMENT_BYTES = 4 * 1024;
/** DynamoDB resource-based policy considerations (DynamoDB Developer Guide): 20 KB, white space counted. */
const DYNAMODB_RESOURCE_POLICY_BYTES = 20 * 1024;
/** KMS PutKeyPolicy / CreateKey API reference: "The policy size limit is 32 kilobytes (32768 bytes)". */
const KMS_KEY_POLICY_BYTES = 32768;
/** Amazon SQS policy quotas (SQS Developer Guide): 8,192 bytes, 20 statements, 50 principals, 10 conditions, 7 actions per statement. */
const SQS_POLICY_BYTES = 8192;
const SQS_POLICY_STATEMENTS = 20;
const SQS_POLICY_PRINCIPALS = 50;
const SQS_POLICY_CONDITIONS = 10;
const SQS_POLICY_ACTIONS_PER_STATEMENT = 7;
/** Filter policy constraints in Amazon SNS (SNS Developer Guide): 150 value combinations, 5 keys, 256 KB; 200 filter policies per topic (default quota). */
const SNS_FILTER_COMBINATIONS = 150;
const SNS_FILTER_KEYS = 5;
const SNS_FILTER_BYTES = 256 * 1024;
const SNS_FILTER_POLICIES_PER_TOPIC = 200;
/** CloudFormation CreateStackSet API reference: TemplateBody "a maximum length of 51,200 bytes" (the spokes' StackSet is inline). */
const STACK_SET_TEMPLATE_BODY_BYTES = 51200;
/**
 * Systems Manager Parameter Store: a standard parameter holds 4,096 characters ("Standard tier parameters support a
 * maximum parameter value of 4096 characters", PutParameter's ValidationException), an advanced one 8 KB
 * (Parameter Store quotas); Intelligent-Tiering picks advanced when the value needs it.
 */
const SSM_STANDARD_VALUE_CHARS = 4096;
const SSM_ADVANCED_VALUE_BYTES = 8192;
/** CloudWatch Logs PutSubscriptionFilter API reference: "Each log group can have up to two subscription filters". */
const LOGS_SUBSCRIPTION_FILTERS_PER_GROUP = 2;
/** Amazon EventBridge quotas (EventBridge User Guide): event pattern size 2,048 characters (default; adjustable to 4,096), rules per event bus 300 (default). */
const EVENT_PATTERN_CHARS = 2048;
const RULES_PER_BUS = 300;
/** Same page: targets per rule, 5 (not adjustable). */
const TARGETS_PER_RULE = 5;

// --- What is measured --------------------------------------------------------------------------------------------

interface StackUnderTest {
  name: string;
  template: CfnTemplate;
  templateBytes: number;
  ctx: ResolveContext;
}

type Resource = { Type: string; Properties?: Record<string, unknown> };
type SqsStatement = {
  Principal?: unknown;
  Action?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

function resources(stack: StackUnderTest, type: string): [string, Resource][] {
  return Object.entries(stack.template.Resources ?? {}).filter(([, r]) => r.Type === type);
}

function resolved<T = unknown>(stack: StackUnderTest, value: unknown): T {
  return resolveValue(stack.ctx, value) as T;
}

/** The logical id a Ref or Fn::GetAtt points to. */
function targetOf(value: unknown): string | undefined {
  const v = value as { Ref?: string; 'Fn::GetAtt'?: [string, string] } | undefined;
  return v?.Ref ?? v?.['Fn::GetAtt']?.[0];
}

function synthesize(config: ConfigInput): StackUnderTest[] {
  const outdir = emptyDir();
  const { app } = buildApp({
    cwd: emptyDir(),
    outdir,
    // Every stack: the guardrails, and organization mode's management stacks and the management account's spokes.
    context: {
      ...NO_BUNDLING,
      config: writeConfig(config),
      guardrails: 'true',
      management: 'true',
      hubAccount: '123456789012',
    },
  });
  const assembly = app.synth();
  return assembly.stacks.map((artifact: CloudFormationStackArtifact) => {
    const template = artifact.template as CfnTemplate;
    return {
      name: artifact.stackName,
      template,
      templateBytes: statSync(join(outdir, artifact.templateFile)).size,
      ctx: { template, stackName: artifact.stackName, region: artifact.environment.region },
    };
  });
}

/** The main stack alone (no usage stacks), for a config variant measured only there. */
function mainStackOf(config: ConfigInput): StackUnderTest {
  const app = new App({ context: NO_BUNDLING });
  const stack = new KeyguardStack(app, STACK_NAME, {
    stackName: STACK_NAME,
    env: { region: 'us-east-1' },
    config: parseConfig(config),
  });
  const template = app.synth().getStackByName(STACK_NAME).template as CfnTemplate;
  return {
    name: stack.stackName,
    template,
    templateBytes: jsonBytes(template),
    ctx: { template, stackName: stack.stackName, region: 'us-east-1' },
  };
}

/** The guardrails stack alone, for the managed-policy variant (one config holds the SCP or the managed policy). */
function guardrailsStackOf(config: ConfigInput): StackUnderTest {
  const app = new App({ context: NO_BUNDLING });
  new GuardrailsStack(app, GUARDRAILS_STACK_NAME, {
    stackName: GUARDRAILS_STACK_NAME,
    env: { region: 'us-east-1' },
    config: parseConfig(config),
  });
  const template = app.synth().getStackByName(GUARDRAILS_STACK_NAME).template as CfnTemplate;
  return {
    name: GUARDRAILS_STACK_NAME,
    template,
    templateBytes: jsonBytes(template),
    ctx: { template, stackName: GUARDRAILS_STACK_NAME, region: 'us-east-1' },
  };
}

/** What each check measured, printed when KEYGUARD_PRINT_LIMITS=1 (for the README's and the issue's figures). */
const measured = new Map<string, { value: number; limit: number; where: string }>();
function record(limit: string, where: string, value: number, max: number): void {
  const seen = measured.get(limit);
  if (!seen || value > seen.value) measured.set(limit, { value, limit: max, where });
}

const LARGEST = largestConfig();
let stacks: StackUnderTest[];

beforeAll(() => {
  stacks = synthesize(LARGEST);
  stacks.push(
    guardrailsStackOf(largestConfig({ guardrails: 'managed-policy' })),
    guardrailsStackOf(largestConfig({ guardrails: 'managed-policy', wide: true })),
    guardrailsStackOf(largestConfig({ wide: true })),
  );
});

afterAll(() => {
  if (process.env.KEYGUARD_PRINT_LIMITS !== '1') return;
  const rows = [...measured].map(([limit, m]) => `${limit}\t${m.value}\t${m.limit}\t${m.where}`);
  process.stdout.write(`${rows.join('\n')}\n`);
});

/** The largest config's strings, as the probes below grow them. */
type Draft = {
  fallbackOwner: string;
  tags: { owner: string };
  guardrails: { exemptTag: { value: string } };
  approvers: string[];
  leakDetection: { logGroups: string[] };
  notifications: { subscriptions: [{ email: string; owners: [string] }] };
};

describe('the largest config the schema accepts', () => {
  test('is accepted by ConfigSchema (ASCII and wide)', () => {
    // Assess
    for (const config of [
      LARGEST,
      largestConfig({ wide: true }),
      largestConfig({ guardrails: 'managed-policy' }),
    ]) {
      const result = ConfigSchema.safeParse(config);
      expect(result.success ? [] : result.error.issues).toEqual([]);
    }
  });

  test.each(ARRAY_PATHS)('%s is at its maximum: one more item is refused as too big', (path) => {
    // Prepare
    const config = structuredClone(LARGEST);
    const { list, at } = arrayAt(config, path);
    expect(list).toHaveLength(maxAt(path));
    // Act
    list.push(structuredClone(list.at(-1)));
    const result = ConfigSchema.safeParse(config);
    // Assess
    const issues = result.success ? [] : result.error.issues;
    expect(issues).toEqual(
      expect.arrayContaining([expect.objectContaining({ code: 'too_big', origin: 'array', path: at })]),
    );
  });

  test('fills every list of the schema (a list added to the schema is named here until it is filled)', () => {
    expect([...schemaPaths().lists].sort()).toEqual([...ARRAY_PATHS].sort());
  });

  test('sets every setting of the schema, none left to its default or null', () => {
    const unset = schemaPaths().settings.filter(
      (path) => !valuesAt(LARGEST, path).some((v) => v !== undefined && v !== null),
    );
    expect(unset).toEqual([]);
  });

  test('every string is at its maximum length: one more character is refused', () => {
    const config = LARGEST as unknown as Draft;
    const probes: [string, (c: Draft) => void][] = [
      ['fallbackOwner', (c) => (c.fallbackOwner += 'x')],
      ['tags.owner', (c) => (c.tags.owner += 'x')],
      ['guardrails.exemptTag.value', (c) => (c.guardrails.exemptTag.value += 'x')],
      ['approvers.0', (c) => (c.approvers[0] += 'x')],
      ['leakDetection.logGroups.0', (c) => (c.leakDetection.logGroups[0] += 'x')],
      [
        'notifications.subscriptions.0.email',
        (c) => (c.notifications.subscriptions[0].email = `x${c.notifications.subscriptions[0].email}`),
      ],
      ['notifications.subscriptions.0.owners.0', (c) => (c.notifications.subscriptions[0].owners[0] += 'x')],
    ];
    for (const [path, grow] of probes) {
      // Act
      const copy = structuredClone(config);
      grow(copy);
      const result = ConfigSchema.safeParse(copy);
      // Assess
      const codes = result.success
        ? []
        : result.error.issues.filter((i) => i.path.join('.') === path).map((i) => i.code);
      expect({ path, codes }).toEqual({ path, codes: expect.arrayContaining(['too_big']) });
    }
  });
});

describe('measurement functions', () => {
  const policy = {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/key with space' }],
  };

  test('IAM counts characters without white space, inside strings too', () => {
    const minified = JSON.stringify(policy);
    expect(iamPolicyChars(policy)).toBe(minified.length - 2);
    expect(iamPolicyChars(JSON.stringify(policy, null, 2))).toBe(minified.length - 2);
  });

  test('JSON documents are counted in UTF-8 bytes of their minified form', () => {
    expect(jsonBytes({ a: 'é' })).toBe('{"a":"é"}'.length + 1);
    expect(jsonBytes('{"a":1}')).toBe(7);
  });

  test("a function's environment is the JSON of its variables: keys, values, quotes, separators and escapes", () => {
    // {"A":"1","BC":"x\"y"} is 21 characters
    expect(lambdaEnvironmentBytes({ A: '1', BC: 'x"y' })).toBe(21);
  });
});

describe('the app synthesized with the largest config stays within AWS limits', () => {
  test('CloudFormation: resources, outputs and parameters per template', () => {
    expect(stacks.length).toBeGreaterThan(2);
    for (const s of stacks) {
      const counts = {
        stack: s.name,
        resources: Object.keys(s.template.Resources ?? {}).length,
        outputs: Object.keys(s.template.Outputs ?? {}).length,
        parameters: Object.keys(s.template.Parameters ?? {}).length,
      };
      record('CloudFormation resources', s.name, counts.resources, TEMPLATE_RESOURCES);
      record('CloudFormation outputs', s.name, counts.outputs, TEMPLATE_OUTPUTS);
      record('CloudFormation parameters', s.name, counts.parameters, TEMPLATE_PARAMETERS);
      expect(counts).toEqual({
        stack: s.name,
        resources: expect.toBeWithin(0, TEMPLATE_RESOURCES + 1),
        outputs: expect.toBeWithin(0, TEMPLATE_OUTPUTS + 1),
        parameters: expect.toBeWithin(0, TEMPLATE_PARAMETERS + 1),
      });
    }
  });

  test('IAM: aggregate of inline policies per role, managed policies', () => {
    let managed = 0;
    for (const s of stacks) {
      const inline = new Map<string, number>();
      for (const [id, role] of resources(s, 'AWS::IAM::Role')) {
        const own = (role.Properties?.Policies as { PolicyDocument: unknown }[] | undefined) ?? [];
        inline.set(
          id,
          own.reduce((n, p) => n + iamPolicyChars(resolved(s, p.PolicyDocument)), 0),
        );
      }
      for (const [, policy] of resources(s, 'AWS::IAM::Policy')) {
        const size = iamPolicyChars(resolved(s, policy.Properties?.PolicyDocument));
        for (const role of (policy.Properties?.Roles as unknown[] | undefined) ?? []) {
          const id = targetOf(role);
          if (id && inline.has(id)) inline.set(id, (inline.get(id) ?? 0) + size);
        }
      }
      for (const [id, size] of inline) {
        record('IAM inline policies per role (chars)', `${s.name}/${id}`, size, IAM_ROLE_INLINE_CHARS);
        expect({ role: `${s.name}/${id}`, size }).toEqual({
          role: `${s.name}/${id}`,
          size: expect.toBeWithin(0, IAM_ROLE_INLINE_CHARS + 1),
        });
      }
      for (const [id, policy] of resources(s, 'AWS::IAM::ManagedPolicy')) {
        managed += 1;
        const size = iamPolicyChars(resolved(s, policy.Properties?.PolicyDocument));
        record('IAM managed policy (chars)', `${s.name}/${id}`, size, IAM_MANAGED_POLICY_CHARS);
        expect({ policy: `${s.name}/${id}`, size }).toEqual({
          policy: `${s.name}/${id}`,
          size: expect.toBeWithin(0, IAM_MANAGED_POLICY_CHARS + 1),
        });
      }
    }
    // At least the guardrails' managed-policy variant, measured ASCII and wide.
    expect(managed).toBeGreaterThanOrEqual(2);
  });

  test('Organizations: the SCP', () => {
    let found = 0;
    for (const s of stacks) {
      for (const [id, policy] of resources(s, 'AWS::Organizations::Policy')) {
        const size = JSON.stringify(resolved(s, policy.Properties?.Content)).length;
        record('Organizations SCP (chars)', `${s.name}/${id}`, size, SCP_CHARS);
        expect({ policy: `${s.name}/${id}`, size }).toEqual({
          policy: `${s.name}/${id}`,
          size: expect.toBeWithin(0, SCP_CHARS + 1),
        });
        found += 1;
      }
    }
    // The SCP of the largest config, ASCII and wide.
    expect(found).toBe(2);
  });

  test('DynamoDB resource policies, KMS key policies, SQS queue policies', () => {
    for (const s of stacks) {
      for (const [id, table] of resources(s, 'AWS::DynamoDB::Table')) {
        const doc = (table.Properties?.ResourcePolicy as { PolicyDocument?: unknown } | undefined)
          ?.PolicyDocument;
        if (doc === undefined) continue;
        const size = jsonBytes(resolved(s, doc));
        record('DynamoDB resource policy (bytes)', `${s.name}/${id}`, size, DYNAMODB_RESOURCE_POLICY_BYTES);
        expect({ table: id, size }).toEqual({
          table: id,
          size: expect.toBeWithin(0, DYNAMODB_RESOURCE_POLICY_BYTES + 1),
        });
      }
      for (const [id, key] of resources(s, 'AWS::KMS::Key')) {
        const size = jsonBytes(resolved(s, key.Properties?.KeyPolicy));
        record('KMS key policy (bytes)', `${s.name}/${id}`, size, KMS_KEY_POLICY_BYTES);
        expect({ key: id, size }).toEqual({ key: id, size: expect.toBeWithin(0, KMS_KEY_POLICY_BYTES + 1) });
      }
      for (const [id, queuePolicy] of resources(s, 'AWS::SQS::QueuePolicy')) {
        const doc = resolved<{ Statement: SqsStatement[] }>(s, queuePolicy.Properties?.PolicyDocument);
        const size = jsonBytes(doc);
        const listOf = (v: unknown) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
        const principals = doc.Statement.flatMap((st) =>
          typeof st.Principal === 'object' && st.Principal !== null
            ? Object.values(st.Principal).flatMap(listOf)
            : listOf(st.Principal),
        ).length;
        const conditions = doc.Statement.flatMap((st) =>
          Object.values(st.Condition ?? {}).flatMap(Object.keys),
        ).length;
        const actions = Math.max(...doc.Statement.map((st) => listOf(st.Action).length));
        expect({ queuePolicy: id, principals, conditions, actions }).toEqual({
          queuePolicy: id,
          principals: expect.toBeWithin(0, SQS_POLICY_PRINCIPALS + 1),
          conditions: expect.toBeWithin(0, SQS_POLICY_CONDITIONS + 1),
          actions: expect.toBeWithin(1, SQS_POLICY_ACTIONS_PER_STATEMENT + 1),
        });
        record('SQS queue policy principals', `${s.name}/${id}`, principals, SQS_POLICY_PRINCIPALS);
        record('SQS queue policy conditions', `${s.name}/${id}`, conditions, SQS_POLICY_CONDITIONS);
        record(
          'SQS queue policy actions per statement',
          `${s.name}/${id}`,
          actions,
          SQS_POLICY_ACTIONS_PER_STATEMENT,
        );
        record('SQS queue policy (bytes)', `${s.name}/${id}`, size, SQS_POLICY_BYTES);
        record('SQS queue policy statements', `${s.name}/${id}`, doc.Statement.length, SQS_POLICY_STATEMENTS);
        expect({ queuePolicy: id, size, statements: doc.Statement.length }).toEqual({
          queuePolicy: id,
          size: expect.toBeWithin(0, SQS_POLICY_BYTES + 1),
          statements: expect.toBeWithin(1, SQS_POLICY_STATEMENTS + 1),
        });
      }
    }
  });

  test('SNS: subscription filter policies', () => {
    for (const s of stacks) {
      const perTopic = new Map<string, number>();
      for (const [id, sub] of resources(s, 'AWS::SNS::Subscription')) {
        const filter = sub.Properties?.FilterPolicy as Record<string, unknown[]> | undefined;
        if (!filter) continue;
        const topic = targetOf(sub.Properties?.TopicArn) ?? String(sub.Properties?.TopicArn);
        perTopic.set(topic, (perTopic.get(topic) ?? 0) + 1);
        const combinations = Object.values(filter).reduce((n, values) => n * values.length, 1);
        record(
          'SNS filter policy value combinations',
          `${s.name}/${id}`,
          combinations,
          SNS_FILTER_COMBINATIONS,
        );
        expect({
          subscription: id,
          combinations,
          keys: Object.keys(filter).length,
          bytes: jsonBytes(filter) <= SNS_FILTER_BYTES,
        }).toEqual({
          subscription: id,
          combinations: expect.toBeWithin(1, SNS_FILTER_COMBINATIONS + 1),
          keys: expect.toBeWithin(1, SNS_FILTER_KEYS + 1),
          bytes: true,
        });
      }
      for (const [topic, count] of perTopic) {
        record('SNS filter policies per topic', `${s.name}/${topic}`, count, SNS_FILTER_POLICIES_PER_TOPIC);
        expect({ topic, count }).toEqual({
          topic,
          count: expect.toBeWithin(1, SNS_FILTER_POLICIES_PER_TOPIC + 1),
        });
      }
    }
  });

  test('CloudWatch Logs: subscription filter names unique per log group, at most two per group', () => {
    const perGroup = new Map<string, string[]>();
    for (const s of stacks) {
      for (const [, filter] of resources(s, 'AWS::Logs::SubscriptionFilter')) {
        const group = `${s.ctx.region}:${resolved<string>(s, filter.Properties?.LogGroupName)}`;
        perGroup.set(group, [
          ...(perGroup.get(group) ?? []),
          resolved<string>(s, filter.Properties?.FilterName),
        ]);
      }
    }
    expect(perGroup.size).toBe(maxAt('leakDetection.logGroups'));
    for (const [group, names] of perGroup) {
      record(
        'CloudWatch Logs subscription filters per group (this app)',
        group,
        names.length,
        LOGS_SUBSCRIPTION_FILTERS_PER_GROUP,
      );
      expect({ group, count: names.length, distinct: new Set(names).size }).toEqual({
        group,
        count: expect.toBeWithin(1, LOGS_SUBSCRIPTION_FILTERS_PER_GROUP + 1),
        distinct: names.length,
      });
    }
  });

  test('EventBridge: event pattern size, targets per rule, rules per bus, schedule expressions (rules and Scheduler)', () => {
    const perBus = new Map<string, number>();
    let schedules = 0;
    for (const s of stacks) {
      for (const [id, rule] of resources(s, 'AWS::Events::Rule')) {
        const bus = `${s.ctx.region}:${String(resolved(s, rule.Properties?.EventBusName ?? 'default'))}`;
        perBus.set(bus, (perBus.get(bus) ?? 0) + 1);
        const targets = (rule.Properties?.Targets as unknown[] | undefined) ?? [];
        record('EventBridge targets per rule', `${s.name}/${id}`, targets.length, TARGETS_PER_RULE);
        expect({ rule: id, targets: targets.length }).toEqual({
          rule: id,
          targets: expect.toBeWithin(0, TARGETS_PER_RULE + 1),
        });
        const pattern = rule.Properties?.EventPattern;
        if (pattern !== undefined) {
          const size = JSON.stringify(resolved(s, pattern)).length;
          record('EventBridge event pattern (chars)', `${s.name}/${id}`, size, EVENT_PATTERN_CHARS);
          expect({ rule: id, size }).toEqual({
            rule: id,
            size: expect.toBeWithin(1, EVENT_PATTERN_CHARS + 1),
          });
        }
        const expression = rule.Properties?.ScheduleExpression;
        if (expression !== undefined) {
          expect({ rule: id, problem: scheduleProblem(String(expression)) }).toEqual({
            rule: id,
            problem: null,
          });
          schedules += 1;
        }
      }
      for (const [id, schedule] of resources(s, 'AWS::Scheduler::Schedule')) {
        const expression = String(resolved(s, schedule.Properties?.ScheduleExpression));
        expect({ schedule: id, problem: scheduleProblem(expression) }).toEqual({
          schedule: id,
          problem: null,
        });
        schedules += 1;
      }
    }
    for (const [bus, count] of perBus) {
      record('EventBridge rules per bus (this app)', bus, count, RULES_PER_BUS);
      expect({ bus, count }).toEqual({ bus, count: expect.toBeWithin(1, RULES_PER_BUS + 1) });
    }
    expect(schedules).toBeGreaterThanOrEqual(2);
  });
  test("CloudFormation: the spokes' StackSet template is inline (TemplateBody)", () => {
    let found = 0;
    for (const s of stacks) {
      for (const [id, set] of resources(s, 'AWS::CloudFormation::StackSet')) {
        const body = set.Properties?.TemplateBody;
        if (body === undefined) continue;
        found += 1;
        const size = jsonBytes(resolved(s, body));
        record('StackSet TemplateBody (bytes)', `${s.name}/${id}`, size, STACK_SET_TEMPLATE_BODY_BYTES);
        expect({ stackSet: id, size }).toEqual({
          stackSet: id,
          size: expect.toBeWithin(1, STACK_SET_TEMPLATE_BODY_BYTES + 1),
        });
      }
    }
    expect(found).toBe(1);
  });

  test('Systems Manager: parameter values (the organization settings)', () => {
    let found = 0;
    for (const s of stacks) {
      for (const [id, parameter] of resources(s, 'AWS::SSM::Parameter')) {
        found += 1;
        const value = String(resolved(s, parameter.Properties?.Value));
        const tier = String(parameter.Properties?.Tier ?? 'Standard');
        const [size, max] =
          tier === 'Standard'
            ? [value.length, SSM_STANDARD_VALUE_CHARS]
            : [Buffer.byteLength(value, 'utf8'), SSM_ADVANCED_VALUE_BYTES];
        record(`SSM parameter value (${tier})`, `${s.name}/${id}`, size, max);
        expect({ parameter: id, tier, size }).toEqual({
          parameter: id,
          tier,
          size: expect.toBeWithin(1, max + 1),
        });
      }
    }
    expect(found).toBeGreaterThanOrEqual(1);
  });

  test('IAM: every role trust policy', () => {
    for (const s of stacks) {
      for (const [id, role] of resources(s, 'AWS::IAM::Role')) {
        const size = iamPolicyChars(resolved(s, role.Properties?.AssumeRolePolicyDocument));
        record('IAM role trust policy (chars)', `${s.name}/${id}`, size, IAM_TRUST_POLICY_CHARS);
        expect({ role: `${s.name}/${id}`, size }).toEqual({
          role: `${s.name}/${id}`,
          size: expect.toBeWithin(0, IAM_TRUST_POLICY_CHARS + 1),
        });
      }
    }
  });

  test.each([
    ['ASCII', false],
    ['wide (three-byte letters)', true],
  ])("Lambda: each function's environment, every intrinsic at its longest (%s)", (_name, wide) => {
    const main = wide
      ? mainStackOf(largestConfig({ wide: true }))
      : (stacks.find((s) => s.name === STACK_NAME) as StackUnderTest);
    const functions = resources(main, 'AWS::Lambda::Function');
    expect(functions.length).toBeGreaterThanOrEqual(6);
    for (const [id, fn] of functions) {
      const variables = resolved<Record<string, string>>(
        main,
        (fn.Properties?.Environment as { Variables?: unknown } | undefined)?.Variables ?? {},
      );
      const size = lambdaEnvironmentBytes(variables);
      record(`Lambda environment (bytes${wide ? ', wide' : ''})`, id, size, LAMBDA_ENVIRONMENT_BYTES);
      expect({ function: id, size }).toEqual({
        function: id,
        size: expect.toBeWithin(0, LAMBDA_ENVIRONMENT_BYTES + 1),
      });
    }
  });
});

/**
 * Limits the first run of this check found broken (issue 11): a template over 1 MB (50 subscriptions x 100 owners),
 * the leak function's resource policy over 20 KB (a permission per log group), a non-Latin-1 exempt tag in the
 * guardrail policies, lone surrogates in the function environment. Fixed by the schema's bounds (40 owners, Latin-1
 * exempt tag, Unicode text only) and one invoke permission for every subscribed log group.
 */
describe('the app synthesized with the largest config: limits found broken, now held', () => {
  test('CloudFormation: template body size (the CDK uploads the template to S3)', () => {
    for (const s of stacks) {
      record('CloudFormation template body (bytes)', s.name, s.templateBytes, TEMPLATE_BODY_S3_BYTES);
      expect({ stack: s.name, bytes: s.templateBytes }).toEqual({
        stack: s.name,
        bytes: expect.toBeWithin(0, TEMPLATE_BODY_S3_BYTES + 1),
      });
    }
  });

  test('Lambda: resource-based policy of each function (its AWS::Lambda::Permission statements)', () => {
    for (const s of stacks) {
      const statements = new Map<string, unknown[]>();
      for (const [sid, permission] of resources(s, 'AWS::Lambda::Permission')) {
        const p = resolved<Record<string, string>>(s, permission.Properties);
        const fn = targetOf(permission.Properties?.FunctionName) ?? String(p.FunctionName);
        // The statement Lambda stores for AddPermission (GetPolicy shows this shape).
        const condition: Record<string, Record<string, string>> = {};
        if (p.SourceAccount) condition.StringEquals = { 'AWS:SourceAccount': p.SourceAccount };
        if (p.SourceArn) condition.ArnLike = { 'AWS:SourceArn': p.SourceArn };
        const statement = {
          // CloudFormation names the statement as it names resources: <stack>-<logical id>-<random>, 100 at most.
          Sid: `${s.name}-${sid}-A1B2C3D4E5F6G`.slice(0, 100),
          Effect: 'Allow',
          Principal: { Service: p.Principal },
          Action: p.Action,
          Resource: `arn:aws:lambda:${s.ctx.region}:123456789012:function:${'f'.repeat(64)}`,
          ...(Object.keys(condition).length > 0 ? { Condition: condition } : {}),
        };
        statements.set(fn, [...(statements.get(fn) ?? []), statement]);
      }
      for (const [fn, statement] of statements) {
        const size = jsonBytes({ Version: '2012-10-17', Id: 'default', Statement: statement });
        record('Lambda resource-based policy (bytes)', `${s.name}/${fn}`, size, LAMBDA_RESOURCE_POLICY_BYTES);
        expect({ function: fn, size }).toEqual({
          function: fn,
          size: expect.toBeWithin(0, LAMBDA_RESOURCE_POLICY_BYTES + 1),
        });
      }
    }
  });

  test('IAM and Organizations policy documents contain only the characters IAM accepts', () => {
    let checked = 0;
    for (const s of stacks) {
      const documents: [string, unknown][] = [];
      for (const [id, r] of resources(s, 'AWS::IAM::Role'))
        documents.push([id, r.Properties?.AssumeRolePolicyDocument]);
      for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']) {
        for (const [id, r] of resources(s, type)) documents.push([id, r.Properties?.PolicyDocument]);
      }
      for (const [id, r] of resources(s, 'AWS::Organizations::Policy'))
        documents.push([id, r.Properties?.Content]);
      for (const [id, doc] of documents) {
        const text = JSON.stringify(resolved(s, doc));
        const outside = [...new Set([...text].filter((c) => !IAM_POLICY_CHARACTERS.test(c)))].join('');
        expect({ document: `${s.name}/${id}`, outside }).toEqual({
          document: `${s.name}/${id}`,
          outside: '',
        });
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThan(10);
  });

  test("Lambda: a fallbackOwner of lone surrogates (not Unicode text) is refused, or fits the function's environment", () => {
    // Prepare: JSON.parse reads "\\ud800" as a lone surrogate; JSON.stringify writes it back as six characters.
    const config = largestConfig({ wide: true }) as { fallbackOwner: string };
    config.fallbackOwner = '\ud800'.repeat(maxAt('fallbackOwner'));
    // Act
    const accepted = ConfigSchema.safeParse(config).success;
    const main = accepted ? mainStackOf(config as ConfigInput) : undefined;
    // Assess
    for (const [id, fn] of main ? resources(main, 'AWS::Lambda::Function') : []) {
      const variables = resolved<Record<string, string>>(
        main as StackUnderTest,
        (fn.Properties?.Environment as { Variables?: unknown } | undefined)?.Variables ?? {},
      );
      const size = lambdaEnvironmentBytes(variables);
      record('Lambda environment (bytes, lone surrogates)', id, size, LAMBDA_ENVIRONMENT_BYTES);
      expect({ function: id, size }).toEqual({
        function: id,
        size: expect.toBeWithin(0, LAMBDA_ENVIRONMENT_BYTES + 1),
      });
    }
  });
});
