import { join, resolve } from 'node:path';
import {
  FULL_CONFIG,
  type FunctionUnderTest,
  functionsOf,
  MINIMAL_CONFIG,
  NO_USAGE_CONFIG,
  SINGLE_ACCOUNT_CONFIG,
} from '../support/function-environments';

/**
 * Each Lambda entry point (lambda/handlers/*.ts, the files the functions are bundled from) is loaded with the
 * environment the synthesized template gives its function, the way the Lambda runtime loads it at a cold start:
 * a variable name misspelt in an entry file, or one the stack stops giving, fails its cold start here instead of
 * in the account. The variables come from the template only (never from a list in this file), so the test follows
 * whatever the stack gives each function (test/support/function-environments.ts, shared with bench/bundle.bench.ts).
 */

// Three syntheses and a few dozen isolated loads take tens of seconds on a loaded machine: a generous limit against
// a hang, not a performance assertion.
jest.setTimeout(300_000);

const ENV_MODULE = '../../lambda/shared/env';
const REPO = resolve(__dirname, '..', '..');

/** Variables the function is given that Node.js itself reads at process start, never the module. */
const READ_BY_NODE = new Set(['NODE_OPTIONS']);

interface LoadResult {
  handler: unknown;
  error: unknown;
  /** Every variable name the module (and what it loads) looked up. */
  read: Set<string>;
  /** Every name passed to requireEnv, in order. */
  required: string[];
}

/**
 * Loads an entry file in a module registry of its own, with exactly `env` as process.env, recording which names
 * are read and which go through requireEnv (the real one: the wrapper only records). AWS SDK clients are
 * constructed for real; constructing one makes no call.
 */
function loadEntry(entry: string, env: Record<string, string>): LoadResult {
  const read = new Set<string>();
  const required: string[] = [];
  const saved = process.env;
  process.env = new Proxy(
    { ...env },
    {
      get(target, key) {
        if (typeof key === 'string') read.add(key);
        return Reflect.get(target, key);
      },
      has(target, key) {
        if (typeof key === 'string') read.add(key);
        return Reflect.has(target, key);
      },
    },
  );
  let handler: unknown;
  let error: unknown;
  try {
    jest.isolateModules(() => {
      jest.doMock(ENV_MODULE, () => {
        const actual = jest.requireActual(ENV_MODULE) as typeof import('../../lambda/shared/env');
        return {
          ...actual,
          requireEnv: (e: NodeJS.ProcessEnv, name: string) => {
            required.push(name);
            return actual.requireEnv(e, name);
          },
        };
      });
      try {
        handler = (require(join(REPO, entry)) as { handler?: unknown }).handler;
      } catch (err) {
        error = err;
      }
    });
  } finally {
    jest.dontMock(ENV_MODULE);
    process.env = saved;
  }
  return { handler, error, read, required };
}

let full: FunctionUnderTest[];
let minimal: FunctionUnderTest[];
let variants: FunctionUnderTest[][];

beforeAll(() => {
  full = functionsOf(FULL_CONFIG);
  minimal = functionsOf(MINIMAL_CONFIG);
  variants = [minimal, functionsOf(NO_USAGE_CONFIG), functionsOf(SINGLE_ACCOUNT_CONFIG)];
});

/**
 * Variables that some valid config does not give this function (given with every feature on, absent in a config
 * with fewer features that still has the function). The entry loads without them in those configs (the variants
 * are loaded above), but not necessarily alone: variables come in sets (organization mode gives several), so
 * removing one of a set is no environment a template gives. Every other variable is given in every config.
 */
function conditional(fn: FunctionUnderTest): Set<string> {
  const absent = new Set<string>();
  for (const variant of variants) {
    const other = variant.find((m) => m.logicalId === fn.logicalId);
    if (!other) continue;
    for (const k of Object.keys(fn.variables)) if (!(k in other.variables)) absent.add(k);
  }
  return absent;
}

describe('Lambda entry points load with the environment the template gives them', () => {
  test('every keyguard function of the app is found, each with its own entry under lambda/handlers/', () => {
    // Assess: seven with every feature (five always, key-usage and leak with usage and log groups); a new function
    // is picked up without changing this test.
    expect(full.length).toBeGreaterThanOrEqual(7);
    expect(minimal.length).toBeGreaterThanOrEqual(5);
    for (const fn of [...full, ...minimal]) expect(fn.entry).toMatch(/^lambda\/handlers\/[\w-]+\.ts$/);
    const entries = full.map((f) => f.entry);
    expect(new Set(entries).size).toBe(entries.length);
    expect(entries).toEqual(
      expect.arrayContaining([
        'lambda/handlers/credential-event.ts',
        'lambda/handlers/sweep.ts',
        'lambda/handlers/leak.ts',
        'lambda/handlers/key-usage.ts',
        'lambda/handlers/audit-archive.ts',
        'lambda/handlers/audit-digest.ts',
        'lambda/handlers/approval.ts',
        'lambda/handlers/decision-events.ts',
      ]),
    );
  });

  test.each([
    ['every optional feature on', () => full],
    ['the defaults', () => minimal],
    ['every feature but usage tracking', () => variants[1] ?? []],
    ['every feature but organization mode', () => variants[2] ?? []],
  ])(
    'with %s, each entry loads, exports a handler function and reads every variable it is given',
    (_name, functions) => {
      for (const fn of functions()) {
        // Act
        const loaded = loadEntry(fn.entry, { ...fn.runtime, ...fn.variables });
        // Assess: a variable given but never read is a name the entry misspells where it tolerates absence.
        if (loaded.error)
          throw new Error(`${fn.entry} (${fn.logicalId}) failed to load: ${String(loaded.error)}`);
        const unread = Object.keys(fn.variables).filter((k) => !READ_BY_NODE.has(k) && !loaded.read.has(k));
        expect({ entry: fn.entry, handler: typeof loaded.handler, unread }).toEqual({
          entry: fn.entry,
          handler: 'function',
          unread: [],
        });
      }
    },
  );

  test('removing any variable the entry requires fails its cold start with MissingEnvError naming it', () => {
    let checked = 0;
    for (const fn of full) {
      // Prepare: the names the entry passes to requireEnv with the full environment.
      const env = { ...fn.runtime, ...fn.variables };
      const { required } = loadEntry(fn.entry, env);
      const optional = conditional(fn);
      for (const name of new Set(required)) {
        if (!(name in fn.variables) || optional.has(name)) continue;
        const { [name]: _removed, ...without } = env;
        // Act
        const loaded = loadEntry(fn.entry, without);
        // Assess
        expect({ entry: fn.entry, removed: name, error: errorShape(loaded.error) }).toEqual({
          entry: fn.entry,
          removed: name,
          error: { name: 'MissingEnvError', variable: name },
        });
        checked += 1;
      }
    }
    // Every pipeline function requires its tables, topic and account: the removal loop must have run many times.
    expect(checked).toBeGreaterThanOrEqual(full.length * 2);
  });
});

function errorShape(err: unknown): { name: string; variable?: unknown } | null {
  if (err === undefined) return null;
  if (err instanceof Error) return { name: err.name, variable: (err as { variable?: unknown }).variable };
  return { name: String(err) };
}
