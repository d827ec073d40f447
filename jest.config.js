const { availableParallelism } = require('node:os');

/** Jest runs TypeScript through SWC (fast); type safety comes from `tsc --noEmit` in `npm test`. */
module.exports = {
  // Jest's default is one worker fewer than the cores, which on CI's two cores is one: every file would run in band,
  // one after the other, on one core. Two workers there; the default (cores - 1) on bigger machines.
  maxWorkers: Math.max(2, availableParallelism() - 1),
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // TypeScript first: `import … from '../../bin/keyguard'` must load the CLI's source (which the SDK mocks see),
  // never the bin/keyguard.js launcher that runs the esbuild bundle with its own copy of the SDK.
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json', 'node'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  setupFiles: ['<rootDir>/test/support/setup-env.ts'],
  setupFilesAfterEnv: ['aws-sdk-client-mock-jest'],
  testTimeout: 60000,
};
