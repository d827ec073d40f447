import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { EXIT_INPUT, EXIT_OK } from '../../lambda/cli/io';
import { registerPolicyCommand, runPolicy } from '../../lambda/cli/policy';
import { guardrailPolicy } from '../../lambda/domain/guardrails';
import { parseConfig } from '../../lambda/shared/config';
import { captureIO, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

afterAll(removeTempDirs);

/** A program configured like bin/keyguard.ts's (output to io, exitOverride), with only `policy` registered. */
function program(cwd: string) {
  const out = captureIO(cwd);
  let code: number | undefined;
  const p = new Command()
    .name('keyguard')
    .configureOutput({ writeOut: (s) => out.io.stdout.write(s), writeErr: (s) => out.io.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerPolicyCommand(p, out.io, (c) => {
    code = c;
  });
  const run = async (...args: string[]) => {
    try {
      await p.parseAsync(['node', 'keyguard', ...args]);
      return { code, error: undefined };
    } catch (err) {
      if (err instanceof CommanderError) return { code, error: err };
      throw err;
    }
  };
  return { run, stdout: out.stdout, stderr: out.stderr };
}

describe('keyguard policy', () => {
  test.each(['scp', 'boundary', 'identity'] as const)(
    '--kind %s prints exactly the domain document for the built-in defaults, as pretty JSON',
    async (kind) => {
      // Prepare
      const cli = program(tempDir());
      // Act
      const { code, error } = await cli.run('policy', '--kind', kind);
      // Assess
      expect(error).toBeUndefined();
      expect(code).toBe(EXIT_OK);
      expect(JSON.parse(cli.stdout())).toEqual(guardrailPolicy(parseConfig({}), kind));
      expect(cli.stdout()).toBe(`${JSON.stringify(guardrailPolicy(parseConfig({}), kind), null, 2)}\n`);
      expect(cli.stderr()).toBe('');
    },
  );

  test('--config (relative to cwd) drives the document: max age, long-term keys, exempt tag', async () => {
    // Prepare
    const dir = tempDir();
    const raw = {
      maxAgeDays: 30,
      allowLongTermKeys: false,
      guardrails: { exemptTag: { key: 'security:break-glass', value: 'approved' } },
    };
    writeFile(join(dir, 'conf', 'strict.json'), JSON.stringify(raw));
    const cli = program(dir);
    // Act
    const { code } = await cli.run('policy', '--kind', 'identity', '-c', 'conf/strict.json');
    // Assess
    expect(code).toBe(EXIT_OK);
    const doc = JSON.parse(cli.stdout()) as ReturnType<typeof guardrailPolicy>;
    expect(doc).toEqual(guardrailPolicy(parseConfig(raw), 'identity'));
    expect(doc.Statement.map((s) => s.Sid)).toContain('DenyLongTermBearerToken');
    expect(cli.stdout()).toContain('aws:PrincipalTag/security:break-glass');
  });

  test('without --config, keyguard.config.json in cwd is used', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'keyguard.config.json'), JSON.stringify({ maxAgeDays: 7 }));
    const cli = program(dir);
    // Act
    await cli.run('policy', '--kind', 'scp');
    // Assess
    expect(JSON.parse(cli.stdout())).toEqual(guardrailPolicy(parseConfig({ maxAgeDays: 7 }), 'scp'));
    expect(cli.stdout()).toContain('"iam:ServiceSpecificCredentialAgeDays": "7"');
  });

  test('a bad config: the ConfigError naming key and value on stderr, nothing on stdout, exit 2', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'bad.json'), JSON.stringify({ maxAgeDays: 0 }));
    const cli = program(dir);
    // Act
    const { code } = await cli.run('policy', '--kind', 'scp', '--config', 'bad.json');
    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(cli.stdout()).toBe('');
    expect(cli.stderr()).toBe(
      'keyguard: invalid configuration\nbad.json: maxAgeDays: got 0; allowed: >= 1\n',
    );
  });

  test('a missing config file is an error, never silently the defaults', async () => {
    // Prepare
    const cli = program(tempDir());
    // Act
    const { code } = await cli.run('policy', '--kind', 'scp', '--config', 'nope.json');
    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(cli.stdout()).toBe('');
    expect(cli.stderr()).toBe('keyguard: nope.json: config file not found\n');
  });

  test('--kind is required and limited to scp, boundary, identity (commander usage errors)', async () => {
    // Prepare
    const missing = program(tempDir());
    const wrong = program(tempDir());
    // Act
    const a = await missing.run('policy');
    const b = await wrong.run('policy', '--kind', 'rcp');
    // Assess
    expect(a.error?.code).toBe('commander.missingMandatoryOptionValue');
    expect(missing.stderr()).toContain("required option '-k, --kind <kind>' not specified");
    expect(b.error?.code).toBe('commander.invalidArgument');
    expect(wrong.stderr()).toContain('Allowed choices are scp, boundary, identity');
    expect(missing.stdout() + wrong.stdout()).toBe('');
  });

  test('runPolicy refuses an unknown kind itself (callers other than commander)', async () => {
    // Prepare
    const out = captureIO(tempDir());
    // Act
    const code = await runPolicy({ kind: 'rcp' }, out.io);
    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(out.stdout()).toBe('');
    expect(out.stderr()).toBe('keyguard: --kind: got "rcp"; allowed: scp | boundary | identity\n');
  });

  test('--help explains each kind and how to attach it', async () => {
    // Prepare
    const cli = program(tempDir());
    // Act
    const { error } = await cli.run('policy', '--help');
    // Assess
    expect(error?.exitCode).toBe(0);
    const help = cli.stdout();
    for (const text of [
      '--kind <kind>',
      '--config <file>',
      'aws organizations create-policy --type SERVICE_CONTROL_POLICY',
      'aws organizations attach-policy',
      'aws iam create-policy',
      'aws iam put-user-permissions-boundary',
      'attach-role-policy',
      'keyguard:guardrail-exempt',
      'Exit codes:',
    ]) {
      expect(help).toContain(text);
    }
  });

  test('the program lists policy with its summary', async () => {
    // Prepare
    const cli = program(tempDir());
    // Act
    await cli.run('--help');
    // Assess
    expect(cli.stdout()).toMatch(/policy \[options\]\s+print the preventive guardrail policy/);
  });
});

describe('licence boundary', () => {
  function sources(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return sources(p);
      return /\.(ts|js)$/.test(name) ? [p] : [];
    });
  }

  test('nothing that ships (lambda/, lib/, bin/) imports the AGPL @cloud-copilot evaluator', () => {
    // Act
    const importing = ['lambda', 'lib', 'bin']
      .flatMap((d) => sources(join(REPO, d)))
      .filter((f) => readFileSync(f, 'utf8').includes('@cloud-copilot'));
    // Assess
    expect(importing).toEqual([]);
  });
});

describe('a document over the AWS size limit', () => {
  test('is reported on stderr with exit 2 and nothing on stdout (only reachable past the schema: loadConfig mocked)', async () => {
    // Prepare: a config whose exempt tag value is longer than the schema allows
    const oversized = parseConfig({});
    oversized.guardrails.exemptTag.value = 'v'.repeat(1000);
    let run: typeof runPolicy = runPolicy;
    jest.isolateModules(() => {
      jest.doMock('../../lambda/shared/config', () => ({
        ...jest.requireActual<typeof import('../../lambda/shared/config')>('../../lambda/shared/config'),
        loadConfig: () => ({ config: oversized, source: 'mocked' }),
      }));
      run = (require('../../lambda/cli/policy') as typeof import('../../lambda/cli/policy')).runPolicy;
    });
    const out = captureIO(tempDir());
    // Act
    const code = await run({ kind: 'scp' }, out.io);
    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(out.stdout()).toBe('');
    expect(out.stderr()).toMatch(
      /^keyguard: the scp guardrail policy is \d+ characters \(minified\), over the AWS limit of 5120/,
    );
  });
});
