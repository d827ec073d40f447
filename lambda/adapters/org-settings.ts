import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { ConfigError, formatIssues, type OrgSettings, OrgSettingsSchema } from '../shared/config';
import { SDK_MAX_ATTEMPTS } from './clients';

/**
 * Organization mode's settings (the organization and its overrides), which do not fit a function's 4 KB of
 * environment: the hub stack writes them to one SSM String parameter and names it in ORG_SETTINGS_PARAMETER. A
 * function reads the parameter once per container and parses it with OrgSettingsSchema; a value that is not valid
 * fails every invocation with a message naming the parameter and the key (the stack wrote it from a validated
 * config, so a bad value means someone edited the parameter by hand).
 */

export const ORG_SETTINGS_ENV = 'ORG_SETTINGS_PARAMETER';

/** Longest part of a bad parameter's text a message repeats. */
const SHOWN_MAX = 200;

/** Parses the parameter's value; throws ConfigError naming the parameter, the key and what is allowed. */
export function parseOrgSettings(value: string, parameterName: string): OrgSettings {
  const source = `SSM parameter ${parameterName}`;
  let input: unknown;
  try {
    input = JSON.parse(value);
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).slice(0, SHOWN_MAX);
    throw new ConfigError(`${source}: not valid JSON (${why})`);
  }
  const result = OrgSettingsSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(
      `invalid organization settings\n${formatIssues(source, input, result.error.issues)}`,
    );
  }
  return result.data;
}

/** Reads and parses the parameter (one GetParameter call). */
export async function readOrgSettings(ssm: SSMClient, parameterName: string): Promise<OrgSettings> {
  let value: string | undefined;
  try {
    const res = await ssm.send(new GetParameterCommand({ Name: parameterName }));
    value = res.Parameter?.Value;
  } catch (err) {
    const name = (err as { name?: unknown } | null)?.name;
    if (name === 'ParameterNotFound') {
      throw new ConfigError(`SSM parameter ${parameterName}: not found (${ORG_SETTINGS_ENV} names it)`);
    }
    throw err;
  }
  if (value === undefined) throw new ConfigError(`SSM parameter ${parameterName}: has no value`);
  return parseOrgSettings(value, parameterName);
}

/**
 * The settings, read at most once per container: the first invocation reads the parameter and every later one
 * reuses the answer. A bad value is kept (every invocation fails with it, as a bad environment would); an SSM
 * failure that may pass (throttling past retries, a network error) is not, so the next invocation reads again.
 */
export class OrgSettingsLoader {
  private pending: Promise<OrgSettings> | null = null;

  constructor(
    private readonly ssm: SSMClient,
    readonly parameterName: string,
  ) {}

  get(): Promise<OrgSettings> {
    if (!this.pending) {
      const p = readOrgSettings(this.ssm, this.parameterName);
      this.pending = p;
      p.catch((err: unknown) => {
        if (!(err instanceof ConfigError) && this.pending === p) this.pending = null;
      });
    }
    return this.pending;
  }
}

/** The loader when the function runs in organization mode (ORG_SETTINGS_PARAMETER set), else null. */
export function orgSettingsLoaderFromEnv(env: NodeJS.ProcessEnv, ssm?: SSMClient): OrgSettingsLoader | null {
  const name = env[ORG_SETTINGS_ENV];
  if (name === undefined || name.trim() === '') return null;
  return new OrgSettingsLoader(
    ssm ?? new SSMClient({ maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' }),
    name.trim(),
  );
}
