#!/usr/bin/env node

/**
 * Executable shim for the `keyguard` bin (package.json "bin"): loads the TypeScript CLI through tsx, so the
 * CLI runs from source with no build step.
 */
// Set before the AWS SDK loads: its Node-version notice would otherwise pollute the CLI's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
require('tsx/cjs');
require('./keyguard.ts').runAsProcess();
