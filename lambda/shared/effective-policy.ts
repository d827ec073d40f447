import {
  type Config,
  ConfigError,
  canonical,
  formatIssues,
  type OrgSettings,
  parseConfig,
  policyVersion,
} from './config';
import * as z from './zod';

/**
 * The effective policy a deployed stack runs with, as the stack publishes it (one SSM String parameter, stack output
 * EffectivePolicyParameterName) and the CLI reads it (lambda/cli/deployed-policy.ts): the validated config, its
 * policyVersion (the one the functions get in POLICY_VERSION and record in every decision) and its mode. Shared by
 * the CDK construct and the CLI, so the two cannot disagree on the format. No secrets: the config holds none.
 *
 * Size. A Standard parameter holds 4,096 characters (PutParameter's ValidationException: "Standard tier parameters
 * support a maximum parameter value of 4096 characters"), an Advanced one 8 KB and is charged per month; an Advanced
 * parameter can never be turned back into a Standard one (delete and recreate). The whole config is published when
 * it fits 8 KB. A larger config (long subscription lists, many scanned log groups) is published without the lists
 * that never change a decision (COMPACT_OMITTED, named in `omitted`), and in organization mode, if still too large,
 * without the organization and its overrides, which the hub already publishes in their own parameter
 * (`organizationSettingsParameter`, read from there). Each form goes in the Standard tier when it fits 4 KB, else in
 * the Advanced tier; the largest config the schema accepts fits (test/lib/effective-policy.test.ts).
 */

/** Format of the published document; a reader refuses any other. */
export const EFFECTIVE_POLICY_FORMAT = 1 as const;

/** Standard tier: 4,096 characters (measured here in UTF-8 bytes, never fewer than the characters). */
export const SSM_STANDARD_VALUE_BYTES = 4096;
/** Advanced tier: 8 KB. */
export const SSM_ADVANCED_VALUE_BYTES = 8192;

/** Lists that never change a decision (policyVersion leaves them out) and that no CLI command reads from the stack. */
export const COMPACT_OMITTED = [
  'notifications.subscriptions',
  'notifications.chat',
  'leakDetection.logGroups',
  'guardrails.scpTargetIds',
  'leakDetection.slack',
  'leakDetection.confluence',
] as const;
/** What the organization form leaves out (read from the organization settings parameter instead). */
const ORGANIZATION_OMITTED = ['organization', 'overrides'] as const;
const OMITTABLE = [...COMPACT_OMITTED, ...ORGANIZATION_OMITTED] as const;
export type OmittedSetting = (typeof OMITTABLE)[number];

export type ParameterTier = 'Standard' | 'Advanced';

export interface EffectivePolicyDocument {
  format: typeof EFFECTIVE_POLICY_FORMAT;
  policyVersion: string;
  mode: Config['mode'];
  /** The validated config (defaults filled in), less the settings named in `omitted`. */
  config: Record<string, unknown>;
  /** Settings left out to fit the parameter (their defaults are not what the stack runs with: read them elsewhere). */
  omitted: OmittedSetting[];
  /** Organization form: the SSM parameter holding `organization` and `overrides` (OrgSettingsSchema). */
  organizationSettingsParameter?: string;
}

export interface PublishedPolicy {
  document: EffectivePolicyDocument;
  /** The parameter's value (minified JSON). */
  value: string;
  /** UTF-8 bytes of `value`. */
  bytes: number;
  tier: ParameterTier;
}

export class EffectivePolicyTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EffectivePolicyTooLargeError';
  }
}

/** A copy of `json` without the settings at `paths` (dotted: `notifications.subscriptions`). */
function without(json: Record<string, unknown>, paths: readonly string[]): Record<string, unknown> {
  const copy = structuredClone(json);
  for (const path of paths) {
    const steps = path.split('.');
    let at: Record<string, unknown> | undefined = copy;
    for (const step of steps.slice(0, -1)) {
      const next: unknown = at?.[step];
      at = next !== null && typeof next === 'object' ? (next as Record<string, unknown>) : undefined;
    }
    if (at) delete at[steps[steps.length - 1] as string];
  }
  return copy;
}

function bytesOf(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

/**
 * The document the stack publishes for `config`, its value and tier (see the module comment for the order of the
 * forms). `organizationSettingsParameter`: the hub's organization settings parameter, in organization mode. Throws
 * EffectivePolicyTooLargeError, naming the size and the largest settings, when no form fits 8 KB.
 */
export function publishedPolicy(config: Config, organizationSettingsParameter?: string): PublishedPolicy {
  const json = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  const base = {
    format: EFFECTIVE_POLICY_FORMAT as typeof EFFECTIVE_POLICY_FORMAT,
    policyVersion: policyVersion(config),
    mode: config.mode,
  };
  const forms: EffectivePolicyDocument[] = [
    { ...base, config: json, omitted: [] },
    { ...base, config: without(json, COMPACT_OMITTED), omitted: [...COMPACT_OMITTED] },
  ];
  if (config.organization && organizationSettingsParameter) {
    const omitted = [...COMPACT_OMITTED, ...ORGANIZATION_OMITTED];
    forms.push({ ...base, config: without(json, omitted), omitted, organizationSettingsParameter });
  }
  let smallest: { bytes: number; document: EffectivePolicyDocument } | null = null;
  for (const document of forms) {
    const value = JSON.stringify(document);
    const bytes = bytesOf(value);
    if (bytes <= SSM_STANDARD_VALUE_BYTES) return { document, value, bytes, tier: 'Standard' };
    if (bytes <= SSM_ADVANCED_VALUE_BYTES) return { document, value, bytes, tier: 'Advanced' };
    if (!smallest || bytes < smallest.bytes) smallest = { bytes, document };
  }
  const largest = Object.entries(smallest?.document.config ?? {})
    .map(([key, v]) => [key, bytesOf(JSON.stringify(v))] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([key, n]) => `${key} ${n.toLocaleString('en-US')} bytes`);
  throw new EffectivePolicyTooLargeError(
    `effective policy: ${(smallest?.bytes ?? 0).toLocaleString('en-US')} bytes even without ` +
      `${(smallest?.document.omitted ?? []).join(', ')}; an SSM parameter holds at most ` +
      `${SSM_ADVANCED_VALUE_BYTES.toLocaleString('en-US')} bytes (Advanced tier). Largest settings: ${largest.join(', ')}`,
  );
}

const DocumentSchema = z.strictObject({
  format: z.literal(EFFECTIVE_POLICY_FORMAT),
  policyVersion: z
    .string()
    .check(z.regex(/^p-[0-9a-f]{12}$/, 'must be a policy version (p- and 12 hex digits)')),
  mode: z.enum(['audit', 'enforce']),
  config: z.record(z.string(), z.unknown()),
  omitted: z.array(z.enum(OMITTABLE)).check(z.maxLength(OMITTABLE.length)),
  organizationSettingsParameter: z.optional(
    z.string().check(z.maxLength(1011), z.regex(/^\/?[\w.\-/]+$/, 'must be an SSM parameter name')),
  ),
});

/** A published document, checked for shape (its config is checked by readEffectivePolicy). */
export type CheckedDocument = z.infer<typeof DocumentSchema>;

/** Parses a parameter's value as a document; throws ConfigError naming `source` and the field. */
export function parseEffectivePolicyDocument(value: string, source: string): CheckedDocument {
  let input: unknown;
  try {
    input = JSON.parse(value);
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).slice(0, 200);
    throw new ConfigError(`${source}: not valid JSON (${why})`);
  }
  const result = DocumentSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(`invalid effective policy\n${formatIssues(source, input, result.error.issues)}`);
  }
  const doc = result.data;
  const organizationForm = doc.omitted.includes('organization') || doc.omitted.includes('overrides');
  if (organizationForm !== (doc.organizationSettingsParameter !== undefined)) {
    throw new ConfigError(
      `invalid effective policy\n${source}: organizationSettingsParameter: must be given exactly when "omitted" ` +
        'names organization and overrides',
    );
  }
  return doc;
}

/**
 * The config of a checked document, validated as any config is (parseConfig: each problem names `source`, the field
 * and the value), with the organization settings merged in (organization form), and checked against the document's
 * own policyVersion and mode: a value that disagrees was edited by hand, and is refused rather than trusted.
 */
export function effectiveConfig(doc: CheckedDocument, source: string, organization?: OrgSettings): Config {
  const input = organization ? { ...doc.config, ...organization } : doc.config;
  const config = parseConfig(input, `${source}: config`);
  const version = policyVersion(config);
  if (version !== doc.policyVersion) {
    throw new ConfigError(
      `invalid effective policy\n${source}: policyVersion: got ${JSON.stringify(doc.policyVersion)}; the config ` +
        `it holds has version ${version} (the parameter was changed outside the stack: redeploy the stack)`,
    );
  }
  if (doc.mode !== config.mode) {
    throw new ConfigError(
      `invalid effective policy\n${source}: mode: got ${JSON.stringify(doc.mode)}; the config it holds says ` +
        `${JSON.stringify(config.mode)} (the parameter was changed outside the stack: redeploy the stack)`,
    );
  }
  return config;
}

/**
 * Whether two configs are the same policy as published: equal once the settings the published form left out are
 * left out of both (a local file's subscriptions are not compared with a list the parameter does not hold).
 */
export function samePublishedPolicy(a: Config, b: Config, omitted: readonly OmittedSetting[]): boolean {
  // The organization form's organization and overrides were merged back in: they are compared.
  const paths = omitted.filter((p) => !(ORGANIZATION_OMITTED as readonly string[]).includes(p));
  const shown = (c: Config) =>
    JSON.stringify(canonical(without(JSON.parse(JSON.stringify(c)) as Record<string, unknown>, paths)));
  return shown(a) === shown(b);
}
