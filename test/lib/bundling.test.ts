import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { marshall } from '@aws-sdk/util-dynamodb';
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

test('NodejsFunction bundles each handler (approval, audit, credential-event, decision events, sweep, leak) into index.js with a source map', () => {
  // Assess (the leak function is in every deployment: it decides keyguard scan reports, issue 15)
  expect(bundles.map((b) => b.id.replace(/[A-F0-9]{8}$/, '')).sort()).toEqual([
    'ApprovalsHandlerFunction',
    'AuditIntegrityArchiveFunction',
    'AuditIntegrityDigestFunction',
    'CredentialEventFunctionHandlerFunction',
    'DecisionEventsFunction',
    'InventorySweepHandlerFunction',
    'LeakQuarantineHandlerFunction',
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
    // Assess: the functions' schemas are zod/mini (lambda/shared/zod.ts): full zod's classic API, about three times
    // the code to compile and slower schemas to build at every cold start, is in no bundle (issue 13).
    expect({ id, fullZod: map.sources.filter((s) => /node_modules\/zod\/v4\/classic\//.test(s)) }).toEqual({
      id,
      fullZod: [],
    });
  }
});

test("the SDK's default credential chain in each bundle is the environment provider alone (Lambda's role credentials)", () => {
  for (const { id, dir } of bundles) {
    // Prepare
    const { sources } = JSON.parse(readFileSync(join(dir, 'index.js.map'), 'utf8')) as { sources: string[] };
    const packages = new Set(
      sources.map((s) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(s)?.[1]).filter(Boolean),
    );
    // Assess: the alias replaced the chain (no shared files, SSO, web identity, process, container or instance
    // metadata providers, nor the nested STS/SSO clients they bring); the environment provider is what is left.
    expect({ id, alias: sources.some((s) => s.endsWith('lambda/adapters/lambda-credentials.ts')) }).toEqual({
      id,
      alias: true,
    });
    expect({
      id,
      chain: [...packages].filter((p) =>
        /^@aws-sdk\/(credential-provider-(?!env$)[\w-]+|nested-clients)$|^@smithy\/credential-provider-imds$/.test(
          p ?? '',
        ),
      ),
    }).toEqual({ id, chain: [] });
    expect(packages).toContain('@aws-sdk/credential-provider-env');
  }
});

/** Runs `node -e script` with exactly `env`, asynchronously (the loopback server answers in this process). */
function runNode(
  script: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => {
      stdout += b;
    });
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test("the archive function's bundle, loaded and invoked as Lambda does, writes a decision to S3 through the bundled SDK", async () => {
  // Prepare: a loopback S3 that records each request and answers as PutObject does.
  const requests: Array<{ method?: string; url?: string; headers: IncomingHttpHeaders; body: string }> = [];
  const s3 = createServer((req, res) => {
    let body = '';
    req.on('data', (b) => {
      body += b;
    });
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(200, { ETag: '"0123456789abcdef"' });
      res.end();
    });
  });
  await new Promise<void>((r) => s3.listen(0, '127.0.0.1', () => r()));
  const bundle = bundles.find((b) => b.id.startsWith('AuditIntegrityArchiveFunction'));
  if (!bundle) throw new Error('the archive function was not bundled');
  const item = {
    pk: '111122223333#ACCABUNDLEDKEY000001',
    sk: '2026-12-07T11:59:00.000Z/event/e-1',
    accountId: '111122223333',
    keyId: 'ACCABUNDLEDKEY000001',
    action: 'ALLOW',
  };
  const event = {
    Records: [
      {
        eventID: 'ev-1',
        eventName: 'INSERT',
        dynamodb: {
          SequenceNumber: '1',
          Keys: marshall({ pk: item.pk, sk: item.sk }),
          NewImage: marshall(item),
        },
      },
    ],
  };
  const script =
    `require(${JSON.stringify(join(bundle.dir, 'index.js'))}).handler(${JSON.stringify(event)})` +
    '.then((r) => process.stdout.write(JSON.stringify(r)))';
  try {
    // Act
    const run = await runNode(script, {
      PATH: process.env.PATH ?? '',
      NODE_OPTIONS: '--enable-source-maps',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      // The role's session token, as the Lambda runtime sets it beside the keys.
      AWS_SESSION_TOKEN: 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN',
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(s3.address() as AddressInfo).port}`,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ARCHIVE_BUCKET_NAME: 'keyguard-archive',
      ARCHIVE_RETENTION_DAYS: '30',
    });
    // Assess: one locked, checksummed PutObject of the decision, and no failed record.
    expect({ code: run.code, stderr: run.stderr, result: JSON.parse(run.stdout || 'null') }).toEqual({
      code: 0,
      stderr: '',
      result: { batchItemFailures: [] },
    });
    expect(requests).toHaveLength(1);
    const [put] = requests;
    expect(put?.method).toBe('PUT');
    expect(decodeURIComponent(put?.url ?? '')).toContain('ACCABUNDLEDKEY000001');
    expect(put?.headers['x-amz-object-lock-mode']).toBe('COMPLIANCE');
    expect(put?.headers['if-none-match']).toBe('*');
    expect(put?.headers['x-amz-checksum-sha256']).toEqual(expect.any(String));
    expect(put?.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE\//);
    expect(put?.headers['x-amz-security-token']).toBe('IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN');
    expect(JSON.parse(put?.body ?? '')).toEqual(expect.objectContaining({ keyId: 'ACCABUNDLEDKEY000001' }));
  } finally {
    s3.close();
  }
});
