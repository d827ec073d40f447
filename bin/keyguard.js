#!/usr/bin/env node

/**
 * Executable shim for the `keyguard` bin (package.json "bin"): loads the TypeScript CLI through tsx, so the
 * CLI runs from source with no build step. Required rather than run (e.g. by a test resolving
 * `bin/keyguard` to this file), it only exports the CLI module.
 */
// Set before the AWS SDK loads: its Node-version notice would otherwise pollute the CLI's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
require('tsx/cjs');
const cli = require('./keyguard.ts');

if (require.main === module) cli.runAsProcess();
else module.exports = cli;
