import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../lib/app';
import { emptyDir, resourcesOf } from './helpers';

// The one test that really bundles (local esbuild, no Docker): slow, so kept alone.
test('NodejsFunction bundles each handler (approval, audit, credential-event, sweep) into index.js with a source map', () => {
  // Prepare
  const outdir = emptyDir();
  const { app, stack } = buildApp({ cwd: emptyDir(), outdir });
  // Act
  const assembly = app.synth();
  // Assess
  const functions = Object.entries(resourcesOf(Template.fromStack(stack), 'AWS::Lambda::Function'));
  expect(functions.map(([id]) => id.replace(/[A-F0-9]{8}$/, '')).sort()).toEqual([
    'ApprovalsHandlerFunction',
    'AuditIntegrityArchiveFunction',
    'AuditIntegrityDigestFunction',
    'CredentialEventFunctionHandlerFunction',
    'InventorySweepHandlerFunction',
  ]);
  for (const [, fn] of functions) {
    const s3Key = (fn.Properties.Code as { S3Key: string }).S3Key;
    const assetDir = join(assembly.directory, `asset.${s3Key.replace(/\.zip$/, '')}`);
    expect(existsSync(join(assetDir, 'index.js'))).toBe(true);
    expect(statSync(join(assetDir, 'index.js')).size).toBeGreaterThan(0);
    expect(existsSync(join(assetDir, 'index.js.map'))).toBe(true);
  }
  rmSync(outdir, { recursive: true, force: true });
});
