#!/usr/bin/env node
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError } from '../lambda/shared/config';
import { visibleLines } from '../lambda/shared/visible-text';
import { buildApp, ContextError } from '../lib/app';
import { RegionError } from '../lib/keyguard-stack';

/** CDK entry point (cdk.json: `npx tsx bin/app.ts`). Composition only: see lib/app.ts. */
try {
  const { app } = buildApp({ account: process.env.CDK_DEFAULT_ACCOUNT });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth();
} catch (err) {
  if (err instanceof ConfigError || err instanceof RegionError || err instanceof ContextError) {
    // A setting (config key or -c context value) is wrong: say which, without a stack trace.
    // The message quotes config values: shown with control and bidi characters escaped, its lines kept.
    console.error(`BedrockKeyGuard: ${visibleLines(err.message)}`);
    process.exit(1);
  }
  throw err;
}
