import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../lib/app';
import { emptyDir, resourcesOf } from './helpers';

// The one test file that really bundles (local esbuild, no Docker): slow, so kept alone and synthesized once.
jest.setTimeout(300_000);

interface Bundle {
  id: string;
  dir: string;
}

let outdir: string;
let bundles: Bundle[];

beforeAll(() => {
  outdir = emptyDir();
  const { app, stack } = buildApp({ cwd: emptyDir(), outdir });
  const assembly = app.synth();
  bundles = Object.entries(resourcesOf(Template.fromStack(stack), 'AWS::Lambda::Function')).map(
    ([id, fn]) => {
      const s3Key = (fn.Properties.Code as { S3Key: string }).S3Key;
      return { id, dir: join(assembly.directory, `asset.${s3Key.replace(/\.zip$/, '')}`) };
    },
  );
});

afterAll(() => rmSync(outdir, { recursive: true, force: true }));

test('NodejsFunction bundles each handler (approval, audit, credential-event, sweep) into index.js with a source map', () => {
  // Assess
  expect(bundles.map((b) => b.id.replace(/[A-F0-9]{8}$/, '')).sort()).toEqual([
    'ApprovalsHandlerFunction',
    'AuditIntegrityArchiveFunction',
    'AuditIntegrityDigestFunction',
    'CredentialEventFunctionHandlerFunction',
    'InventorySweepHandlerFunction',
  ]);
  for (const { dir } of bundles) {
    expect(existsSync(join(dir, 'index.js'))).toBe(true);
    expect(statSync(join(dir, 'index.js')).size).toBeGreaterThan(0);
    expect(existsSync(join(dir, 'index.js.map'))).toBe(true);
  }
});

test("bundles are built from the packages' ES module builds, tree-shaken, with source maps of mappings only", () => {
  for (const { id, dir } of bundles) {
    // Prepare
    const map = JSON.parse(readFileSync(join(dir, 'index.js.map'), 'utf8')) as {
      sources: string[];
      names: string[];
      mappings: string;
      sourcesContent?: unknown[];
    };
    const sdk = map.sources.filter((s) => /node_modules\/@aws-sdk\/client-[\w-]+\//.test(s));
    // Assess: stack traces still map (mappings and names), the sources' text is not shipped nor parsed at load.
    expect({ id, mapped: map.mappings.length > 0 && map.names.length > 0 }).toEqual({ id, mapped: true });
    expect({ id, sourcesContent: (map.sourcesContent ?? []).filter((c) => c !== null).length }).toEqual({
      id,
      sourcesContent: 0,
    });
    // Assess: every SDK client comes from its dist-es build (mainFields module first), never from the whole
    // dist-cjs build; zod's locales other than English are not bundled (only an ES build lets esbuild drop them).
    expect(sdk.length).toBeGreaterThan(0);
    expect({ id, cjs: sdk.filter((s) => s.includes('/dist-cjs/')) }).toEqual({ id, cjs: [] });
    expect({
      id,
      locales: map.sources.filter((s) => /node_modules\/zod\/.*locales\/(?!en\.)/.test(s)),
    }).toEqual({ id, locales: [] });
  }
});
