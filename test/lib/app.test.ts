import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, functionPolicy, parseConfig, policyVersion } from '../../lambda/shared/config';
import { buildApp, ContextError, GUARDRAILS_SEPARATE_STEP } from '../../lib/app';
import { OwnerAlerts } from '../../lib/constructs/owner-alerts';
import { RegionError } from '../../lib/keyguard-stack';
import { build, emptyDir, NO_BUNDLING, resourcesOf, writeConfig } from './helpers';

const REPO = join(__dirname, '..', '..');

function errorOf(act: () => unknown): Error {
  try {
    act();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error, none was thrown');
}

function envOf(template: ReturnType<typeof build>['template']): Record<string, string> {
  const fn = Object.entries(resourcesOf(template, 'AWS::Lambda::Function')).find(([id]) =>
    id.startsWith('CredentialEventFunction'),
  )?.[1];
  if (!fn) throw new Error('no credential-event function in the template');
  return (fn.Properties.Environment as { Variables: Record<string, string> }).Variables;
}

describe('buildApp: region', () => {
  test('defaults to us-east-1 and names the stack BedrockKeyGuard', () => {
    // Act
    const { stack } = build();
    // Assess
    expect(stack.region).toBe('us-east-1');
    expect(stack.stackName).toBe('BedrockKeyGuard');
  });

  test('another region is an error that says IAM events reach only the us-east-1 default bus', () => {
    // Act
    const error = errorOf(() =>
      buildApp({ context: { ...NO_BUNDLING, region: 'eu-west-1' }, cwd: emptyDir() }),
    );
    // Assess
    expect(error).toBeInstanceOf(RegionError);
    expect(error.message).toContain('region: got "eu-west-1"; allowed: "us-east-1"');
    expect(error.message).toContain('reach EventBridge only on the us-east-1 default event bus');
  });

  test('an explicit us-east-1 is accepted', () => {
    // Act
    const { stack } = build({ context: { region: 'us-east-1' } });
    // Assess
    expect(stack.region).toBe('us-east-1');
  });
});

describe('buildApp: config', () => {
  test('a bad config file fails synth with the file, the key, the value and what is allowed', () => {
    // Prepare
    const file = writeConfig({ mode: 'strict', maxAgeDays: 0 });
    // Act
    const error = errorOf(() => build({ context: { config: file } }));
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain(`${file}: mode: got "strict"; allowed: "audit" | "enforce"`);
    expect(error.message).toContain(`${file}: maxAgeDays: got 0; allowed: >= 1`);
  });

  test('an unknown key is named', () => {
    // Prepare
    const file = writeConfig({ mdoe: 'audit' });
    // Act
    const error = errorOf(() => build({ context: { config: file } }));
    // Assess
    expect(error.message).toMatch(/unknown key\(s\) "mdoe"; allowed: mode, /);
  });

  test('a missing explicit file is an error, not a silent fallback to defaults', () => {
    // Act
    const error = errorOf(() => build({ context: { config: join(emptyDir(), 'nope.json') } }));
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/nope\.json: config file not found/);
  });

  test('without -c config, keyguard.config.json in the working directory is used', () => {
    // Prepare
    const cwd = emptyDir();
    writeFileSync(join(cwd, 'keyguard.config.json'), JSON.stringify({ maxAgeDays: 7 }));
    // Act
    const { template } = build({ cwd });
    // Assess
    expect(JSON.parse(envOf(template).KEYGUARD_CONFIG as string).maxAgeDays).toBe(7);
    expect(envOf(template).POLICY_VERSION).toBe(policyVersion(parseConfig({ maxAgeDays: 7 })));
  });

  test('with no file at all, the embedded defaults are used', () => {
    // Act
    const { template } = build();
    // Assess
    expect(JSON.parse(envOf(template).KEYGUARD_CONFIG as string)).toEqual(functionPolicy(parseConfig({})));
  });
});

describe('buildApp: usage regions', () => {
  test('by default there are no usage stacks', () => {
    // Act
    const { usageStacks } = build();
    // Assess
    expect(usageStacks).toEqual([]);
  });

  test('us-east-1 alone needs no usage stack: the main stack forwards its own region', () => {
    // Act
    const { stack, usageStacks } = build({
      context: { config: writeConfig({ usage: { regions: ['us-east-1'] } }) },
    });
    // Assess
    expect(usageStacks).toEqual([]);
    expect(stack.usageForwarding).toBeDefined();
  });

  test('an invalid usage region fails synth naming the setting', () => {
    // Prepare
    const file = writeConfig({ usage: { regions: ['eu-west-1', 'mars-1'] } });
    // Act
    const error = errorOf(() => build({ context: { config: file } }));
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('usage.regions.1: got "mars-1"');
  });
});

describe('buildApp: account', () => {
  test('a concrete account (CDK_DEFAULT_ACCOUNT) is used and the stack stays nag-clean', () => {
    // Act
    const { stack } = build({ account: '123456789012' });
    const report = new AwsSolutionsChecks().validateScope(stack);
    // Assess
    expect(stack.account).toBe('123456789012');
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  });
});

describe('OwnerAlerts', () => {
  test('the same email twice is a config error naming the entry', () => {
    // Prepare
    const stack = new Stack(new App(), 'Alerts');
    // Act
    const error = errorOf(
      () =>
        new OwnerAlerts(stack, 'OwnerAlerts', {
          subscriptions: [{ email: 'a@example.com' }, { email: 'A@example.com', owners: ['x'] }],
        }),
    );
    // Assess
    expect(error.message).toContain('notifications.subscriptions[1].email: got "A@example.com"');
  });
});

describe('buildApp: guardrails', () => {
  test('no guardrails stack by default (keyguard policy only prints them), and no message', () => {
    // Act
    const built = build();
    // Assess
    expect(built.guardrails).toBeUndefined();
    expect(built.app.node.tryFindChild('BedrockKeyGuardGuardrails')).toBeUndefined();
    expect(Annotations.fromStack(built.stack).findInfo('*', Match.anyValue())).toEqual([]);
  });

  test.each(['scp', 'managed-policy'])(
    'deploy %s without -c guardrails=true: the app (what cdk deploy --all and cdk synth see) has no guardrails stack',
    (deploy) => {
      // Prepare
      const config = writeConfig({ guardrails: { deploy, scpTargetIds: ['ou-ab12-cd34ef56'] } });
      // Act
      const built = build({ context: { config }, account: '123456789012' });
      // Assess
      expect(built.guardrails).toBeUndefined();
      expect(built.app.node.tryFindChild('BedrockKeyGuardGuardrails')).toBeUndefined();
      expect(built.app.synth().stacks.map((s) => s.stackName)).toEqual(['BedrockKeyGuard']);
    },
  );

  test.each(['scp', 'managed-policy'])(
    'deploy %s without the flag: synth says, on the main stack, how to deploy the guardrails as a step of their own',
    (deploy) => {
      // Prepare
      const config = writeConfig({ guardrails: { deploy } });
      // Act
      const { stack } = build({ context: { config } });
      // Assess
      const infos = Annotations.fromStack(stack).findInfo('/BedrockKeyGuard', Match.anyValue());
      expect(infos).toHaveLength(1);
      const text = String(infos[0]?.entry.data);
      expect(text).toContain(`guardrails.deploy is "${deploy}"`);
      expect(text).toContain('npx cdk deploy -c guardrails=true BedrockKeyGuardGuardrails');
      expect(text).toContain('not part of this deployment');
      expect(text).toContain(GUARDRAILS_SEPARATE_STEP);
    },
  );

  test('the message for scp names the credentials it needs (management account or delegated administrator)', () => {
    // Prepare
    const config = writeConfig({ guardrails: { deploy: 'scp' } });
    // Act
    const { stack } = build({ context: { config } });
    // Assess
    Annotations.fromStack(stack).hasInfo(
      '/BedrockKeyGuard',
      Match.stringLikeRegexp('management account.*delegated administrator'),
    );
  });

  test.each([
    ['scp', 'AWS::Organizations::Policy'],
    ['managed-policy', 'AWS::IAM::ManagedPolicy'],
  ])(
    'deploy %s with -c guardrails=true adds the BedrockKeyGuardGuardrails stack in us-east-1 with a %s, nag-clean',
    (deploy, type) => {
      // Prepare
      const config = writeConfig({ guardrails: { deploy, scpTargetIds: ['ou-ab12-cd34ef56'] } });
      // Act
      const built = build({ context: { config, guardrails: 'true' }, account: '123456789012' });
      // Assess
      const { guardrails } = built;
      expect(guardrails?.stackName).toBe('BedrockKeyGuardGuardrails');
      expect(guardrails?.region).toBe('us-east-1');
      expect(guardrails?.account).toBe('123456789012');
      const template = Template.fromStack(guardrails as Stack);
      expect(Object.keys(resourcesOf(template, type))).toHaveLength(1);
      const report = new AwsSolutionsChecks().validateScope(guardrails as Stack);
      expect(report.violations.map((v) => v.ruleName)).toEqual([]);
      // Asked for: no reminder on the main stack.
      expect(Annotations.fromStack(built.stack).findInfo('*', Match.anyValue())).toEqual([]);
    },
  );

  test('the flag as a boolean (cdk.json context) works like "true"; false like no flag', () => {
    // Prepare
    const config = writeConfig({ guardrails: { deploy: 'scp' } });
    // Act
    const on = build({ context: { config, guardrails: true } });
    const off = build({ context: { config, guardrails: false } });
    const offString = build({ context: { config, guardrails: 'false' } });
    // Assess
    expect(on.guardrails?.stackName).toBe('BedrockKeyGuardGuardrails');
    expect(off.guardrails).toBeUndefined();
    expect(offString.guardrails).toBeUndefined();
    Annotations.fromStack(offString.stack).hasInfo(
      '/BedrockKeyGuard',
      Match.stringLikeRegexp('guardrails=true'),
    );
  });

  test('-c guardrails=true with guardrails.deploy "none" is a config error naming the file, the key and the value', () => {
    // Prepare
    const config = writeConfig({ guardrails: { deploy: 'none' } });
    // Act
    const error = errorOf(() => build({ context: { config, guardrails: 'true' } }));
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain(`${config}: guardrails.deploy: got "none"`);
    expect(error.message).toContain('-c guardrails=true');
    expect(error.message).toContain('"scp" | "managed-policy"');
  });

  test('-c guardrails=true with no config file at all names the defaults and how to give a file', () => {
    // Act
    const error = errorOf(() => build({ context: { guardrails: 'true' } }));
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(
      /^guardrails\.deploy: got "none" \(the default: no keyguard\.config\.json in /,
    );
    expect(error.message).toContain('-c config=FILE');
  });

  test.each([['yes'], ['TRUE'], ['1'], [1], [{}], [['true']]])(
    'a bad -c guardrails value (%j) is a context error naming the key, the value and what is allowed',
    (value) => {
      // Prepare
      const config = writeConfig({ guardrails: { deploy: 'scp' } });
      // Act
      const error = errorOf(() => build({ context: { config, guardrails: value } }));
      // Assess
      expect(error).toBeInstanceOf(ContextError);
      expect(error.message).toBe(
        `context guardrails: got ${JSON.stringify(value)}; allowed: "true" | "false" (or a boolean)`,
      );
    },
  );
});

describe('the CDK app (bin/app.ts): context errors', () => {
  test('a bad -c guardrails value exits 1 with the message and no stack trace', () => {
    // Act: the CDK CLI hands -c values to the app in CDK_CONTEXT_JSON
    const r = spawnSync(join(REPO, 'node_modules', '.bin', 'tsx'), [join(REPO, 'bin', 'app.ts')], {
      cwd: emptyDir(),
      encoding: 'utf8',
      timeout: 120_000,
      env: {
        ...process.env,
        CDK_CONTEXT_JSON: JSON.stringify({ guardrails: 'yes' }),
        CDK_OUTDIR: emptyDir(),
      },
    });
    // Assess
    expect(r.stderr.trim().split('\n')).toEqual([
      'BedrockKeyGuard: context guardrails: got "yes"; allowed: "true" | "false" (or a boolean)',
    ]);
    expect(r.status).toBe(1);
  });
});
