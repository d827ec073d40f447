import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { parseOrgSettings } from '../adapters/org-settings';
import { type Config, ConfigError, DEFAULT_CONFIG_FILE, loadConfig, policyVersion } from '../shared/config';
import {
  type CheckedDocument,
  effectiveConfig,
  type OmittedSetting,
  parseEffectivePolicyDocument,
  samePublishedPolicy,
} from '../shared/effective-policy';
import { visible } from '../shared/visible-text';
import { messageOf } from './inputs';
import type { CliIO } from './io';

/**
 * Which policy a command evaluates with (`keyguard inventory`, `inventory --org`, `preview`'s current policy):
 *
 * 1. `--config FILE`: that file, explicitly (the deployed policy is not read).
 * 2. else the deployed stack's effective policy, when a parameter is named (`--policy-parameter`, or
 *    KEYGUARD_POLICY_PARAMETER: the stack output EffectivePolicyParameterName): one SSM GetParameter (two in the
 *    organization form, lambda/shared/effective-policy.ts), validated like any config. When ./keyguard.config.json
 *    also exists and is another policy, one stderr line says so, naming both policyVersions and that `--config`
 *    makes the local file win.
 * 3. else, as without a stack: ./keyguard.config.json if present, else the built-in defaults.
 *
 * A named parameter that cannot be read (missing, access denied) or does not hold a valid policy is an error naming
 * the parameter (and the field): never a silent fall back to another policy than the one asked for.
 */

/** Environment variable naming the effective-policy parameter (the stack output EffectivePolicyParameterName). */
export const POLICY_PARAMETER_ENV = 'KEYGUARD_POLICY_PARAMETER';

export type PolicySource = 'deployed' | 'file' | 'defaults';

export interface ChosenPolicy {
  config: Config;
  policyVersion: string;
  source: PolicySource;
  /** How output names it: `deployed, SSM parameter NAME`, the file's path, or `built-in defaults`. */
  label: string;
}

export interface PolicyChoiceOptions {
  /** `--config FILE`: the local file wins. */
  config?: string;
  /** `--policy-parameter NAME`; default KEYGUARD_POLICY_PARAMETER. */
  policyParameter?: string;
}

export interface DeployedPolicyDeps {
  /** Asked for only when a parameter is named. */
  ssm?: () => SSMClient;
  env?: NodeJS.ProcessEnv;
  /**
   * The parameter's name from the deployed stack (its output EffectivePolicyParameterName, lambda/cli/stack-outputs.ts),
   * asked for only when neither the option nor the variable names one; undefined: no deployed stack to read.
   */
  stackParameter?: () => Promise<string | undefined>;
}

/** A named parameter that could not be read or is not a valid policy: bad usage or setup (exit 2). */
export class DeployedPolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeployedPolicyError';
  }
}

const DENIED = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation']);

async function parameterValue(ssm: SSMClient, name: string, namedBy: string): Promise<string> {
  let value: string | undefined;
  try {
    value = (await ssm.send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
  } catch (err) {
    const code = (err as { name?: unknown } | null)?.name;
    const region = await ssm.config.region().catch(() => 'unknown');
    if (code === 'ParameterNotFound') {
      throw new DeployedPolicyError(
        `SSM parameter ${name} (${namedBy}): not found in ${region} of the account of your credentials (the ` +
          "stack's account holds it). Deploy the stack (its output EffectivePolicyParameterName names the " +
          'parameter), use credentials of its account, or pass --config FILE to evaluate with a local policy',
      );
    }
    if (typeof code === 'string' && DENIED.has(code)) {
      throw new DeployedPolicyError(
        `SSM GetParameter ${name} (${namedBy}) in ${region}: access denied (${messageOf(err)}). Reading the ` +
          'deployed policy needs ssm:GetParameter on that parameter; or pass --config FILE to evaluate with a local policy',
      );
    }
    throw err;
  }
  if (value === undefined) throw new DeployedPolicyError(`SSM parameter ${name} (${namedBy}): has no value`);
  return value;
}

export interface DeployedPolicy {
  config: Config;
  policyVersion: string;
  parameter: string;
  omitted: OmittedSetting[];
}

/**
 * Reads and validates the effective policy a stack published; throws DeployedPolicyError naming the parameter (and
 * for a bad value the field, the value and what is allowed).
 */
export async function readDeployedPolicy(
  ssm: SSMClient,
  parameter: string,
  namedBy = `--policy-parameter or ${POLICY_PARAMETER_ENV}`,
): Promise<DeployedPolicy> {
  const source = `SSM parameter ${parameter}`;
  try {
    const doc: CheckedDocument = parseEffectivePolicyDocument(
      await parameterValue(ssm, parameter, namedBy),
      source,
    );
    const organization = doc.organizationSettingsParameter
      ? parseOrgSettings(
          await parameterValue(ssm, doc.organizationSettingsParameter, `named by ${source}`),
          doc.organizationSettingsParameter,
        )
      : undefined;
    const config = effectiveConfig(doc, source, organization);
    return { config, policyVersion: doc.policyVersion, parameter, omitted: doc.omitted };
  } catch (err) {
    if (err instanceof ConfigError) throw new DeployedPolicyError(err.message);
    throw err;
  }
}

function fromFile(path: string | undefined, cwd: string): ChosenPolicy {
  const { config, source } = loadConfig(path, cwd);
  const isDefaults = source === 'defaults';
  return {
    config,
    policyVersion: policyVersion(config),
    source: isDefaults ? 'defaults' : 'file',
    label: isDefaults ? 'built-in defaults' : source,
  };
}

/** The parameter named by the option or the environment, or null. */
export function policyParameterOf(opts: PolicyChoiceOptions, env: NodeJS.ProcessEnv): string | null {
  const name = (opts.policyParameter ?? '').trim() || (env[POLICY_PARAMETER_ENV] ?? '').trim();
  return name.length > 0 ? name : null;
}

/**
 * The policy a command uses (see the module comment). Throws ConfigError for a bad local file and
 * DeployedPolicyError for a named parameter that cannot be used; SDK errors other than "not found" and "access
 * denied" (no credentials, network) are thrown as they are, for the command's own AWS error handling.
 */
export async function choosePolicy(
  opts: PolicyChoiceOptions,
  io: CliIO,
  deps: DeployedPolicyDeps,
): Promise<ChosenPolicy> {
  if (opts.config !== undefined) return fromFile(opts.config, io.cwd);
  const named = policyParameterOf(opts, deps.env ?? process.env);
  const parameter = named ?? ((await deps.stackParameter?.())?.trim() || null);
  if (parameter === null) return fromFile(undefined, io.cwd);
  // A named parameter is never skipped for want of a client: that would be a silent fall back to another policy.
  if (!deps.ssm) throw new Error(`no SSM client to read the deployed policy (SSM parameter ${parameter})`);
  const deployed = await readDeployedPolicy(
    deps.ssm(),
    parameter,
    named ? `--policy-parameter or ${POLICY_PARAMETER_ENV}` : 'stack output EffectivePolicyParameterName',
  );
  const chosen: ChosenPolicy = {
    config: deployed.config,
    policyVersion: deployed.policyVersion,
    source: 'deployed',
    label: `deployed, SSM parameter ${parameter}`,
  };
  warnIfLocalDiffers(deployed, io);
  return chosen;
}

/** One stderr line when ./keyguard.config.json exists and is not the deployed policy. */
function warnIfLocalDiffers(deployed: DeployedPolicy, io: CliIO): void {
  let local: ChosenPolicy;
  try {
    local = fromFile(undefined, io.cwd);
  } catch (err) {
    const first = messageOf(err).split('\n').slice(-1)[0] ?? '';
    io.stderr.write(
      `keyguard: ./${DEFAULT_CONFIG_FILE} is not a valid config (${visible(first)}); using the deployed policy ` +
        `${deployed.policyVersion} (SSM parameter ${visible(deployed.parameter)})\n`,
    );
    return;
  }
  if (local.source !== 'file') return;
  if (samePublishedPolicy(local.config, deployed.config, deployed.omitted)) return;
  const same =
    local.policyVersion === deployed.policyVersion ? ' (same policyVersion: decisions do not change)' : '';
  io.stderr.write(
    `keyguard: ./${DEFAULT_CONFIG_FILE} (policy ${local.policyVersion}) differs from the deployed policy ` +
      `${deployed.policyVersion} (SSM parameter ${visible(deployed.parameter)})${same}: using the deployed policy; ` +
      `--config ${DEFAULT_CONFIG_FILE} makes the local file win\n`,
  );
}

/** `Policy: p-… (source)`: which policy a command used, for its summary. */
export function policyLine(chosen: Pick<ChosenPolicy, 'policyVersion' | 'label'>): string {
  return `Policy: ${chosen.policyVersion} (${visible(chosen.label)}).`;
}
