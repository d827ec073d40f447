import { measureDomain } from './domain-measure';

/**
 * Entry point bundled by evaluate.bench.ts with the Lambda construct's esbuild options and run in a child
 * process: prints the domain figures as JSON on stdout. Running without tsx matters: tsx transpiles with
 * `keepNames`, which wraps every closure creation in a `__name()` call, and the Lambda bundle does not.
 */
process.stdout.write(`${JSON.stringify(measureDomain())}\n`);
