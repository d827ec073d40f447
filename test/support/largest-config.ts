import { COMMERCIAL_REGIONS } from '../../lambda/adapters/cloudtrail-issuers';
import { type ConfigInput, ConfigSchema } from '../../lambda/shared/config';
import { scheduleProblem } from '../../lambda/shared/schedule';

/**
 * The largest config lambda/shared/config.ts's ConfigSchema accepts, for the deployability check
 * (test/lib/deployability.test.ts): every list at its longest, every string at its longest (valid by the
 * setting's pattern, distinct where a list's items must be), every number at its maximum. The bounds are read from
 * the schema itself, so this follows the schema when a bound changes; a list or string the schema leaves unbounded
 * has no largest value and throws, naming its path.
 *
 * `wide`: free text and tag keys (which allow any Unicode letter) written with a three-byte UTF-8 letter instead of
 * ASCII: the same length in characters as the schema counts them, three times the bytes. What AWS measures in bytes
 * (a function's environment) is largest with it. The guardrail's exempt tag, which its policy documents quote, may
 * hold only U+0020..U+00FF (what IAM accepts in a policy): it is written with a two-byte Latin-1 letter instead.
 */

// zod 4 keeps a schema's checks in `_zod.bag` (maximum, minimum, patterns) and its structure in `_zod.def`.
type Introspected = {
  _zod: { def: Record<string, unknown> & { type: string }; bag: Record<string, unknown> };
};

function inner(schema: unknown): Introspected {
  let cur = schema as Introspected;
  for (;;) {
    const def = cur._zod.def;
    if (['default', 'optional', 'nullable', 'prefault', 'readonly', 'nonoptional'].includes(def.type)) {
      cur = def.innerType as Introspected;
    } else if (def.type === 'pipe') {
      cur = def.in as Introspected;
    } else {
      return cur;
    }
  }
}

/** The schema at a dotted path of ConfigSchema (`[]` steps into a list's items). */
export function schemaAt(path: string): Introspected {
  let cur = inner(ConfigSchema);
  for (const step of path.split('.')) {
    if (step === '[]') {
      cur = inner(cur._zod.def.element);
      continue;
    }
    const shape = cur._zod.def.shape as Record<string, unknown> | undefined;
    if (!shape || !(step in shape)) throw new Error(`ConfigSchema has no ${path} (at ${step})`);
    cur = inner(shape[step]);
  }
  return cur;
}

/** The maximum (length, count or value) the schema allows at a path; throws when it has none. */
export function maxAt(path: string): number {
  const schema = schemaAt(path);
  let max = Number.POSITIVE_INFINITY;
  // `.max(n)` on a string or list is a max_length check, on a number a less_than check (inclusive).
  const checks = (schema._zod.def.checks ?? []) as Introspected[];
  for (const check of checks) {
    const def = check._zod.def as { check?: string; maximum?: unknown; value?: unknown; inclusive?: boolean };
    if (def.check === 'max_length' && typeof def.maximum === 'number') max = Math.min(max, def.maximum);
    if (def.check === 'less_than' && typeof def.value === 'number') {
      max = Math.min(max, def.inclusive ? def.value : def.value - 1);
    }
  }
  if (!Number.isFinite(max))
    throw new Error(`ConfigSchema leaves ${path} unbounded: it has no largest value`);
  return max;
}

/** Every list the generator fills, by path: the deployability check proves each is at its maximum. */
export const ARRAY_PATHS = [
  'expiryWarningDays',
  'approvers',
  'usage.regions',
  'guardrails.scpTargetIds',
  'organization.targets',
  'organization.excludeAccounts',
  'overrides',
  'overrides.[].ous',
  'overrides.[].accounts',
  'notifications.subscriptions',
  'notifications.subscriptions.[].owners',
  'notifications.chat.slack',
  'notifications.chat.teams',
  'leakDetection.logGroups',
  'leakDetection.slack.channels',
  'leakDetection.jira.projects',
  'leakDetection.confluence.spaces',
] as const;

/**
 * Every list and every other setting the schema has, by path, read from the schema: a setting added to the schema
 * and not filled by largestConfig is named by the deployability check instead of being left at its default.
 */
export function schemaPaths(): { lists: string[]; settings: string[] } {
  const lists: string[] = [];
  const settings: string[] = [];
  const walk = (schema: unknown, path: string) => {
    const s = inner(schema);
    if (s._zod.def.type === 'object') {
      for (const [key, child] of Object.entries(s._zod.def.shape as Record<string, unknown>)) {
        walk(child, path ? `${path}.${key}` : key);
      }
    } else if (s._zod.def.type === 'array') {
      lists.push(path);
      walk(s._zod.def.element, `${path}.[]`);
    } else {
      settings.push(path);
    }
  };
  walk(ConfigSchema, '');
  return { lists, settings };
}

/** The values at a path of a config: every item of a list (`[]`), so a setting of some items only is found. */
export function valuesAt(config: unknown, path: string): unknown[] {
  let current: unknown[] = [config];
  for (const step of path.split('.')) {
    current = current.flatMap((v) => {
      if (step === '[]') return Array.isArray(v) ? v : [];
      return v !== null && typeof v === 'object' && step in v ? [(v as Record<string, unknown>)[step]] : [];
    });
  }
  return current;
}

/** A letter that is three bytes in UTF-8 (KATAKANA LETTER A, \p{L}). */
const WIDE_LETTER = '\u30a2';
/** The widest letter an IAM policy document accepts: é, U+00E9, two bytes in UTF-8. */
const LATIN1_LETTER = '\u00e9';

/** `prefix` + index, padded with `fill` to exactly `length` characters. */
function padded(prefix: string, length: number, fill = 'x'): string {
  if (prefix.length > length) throw new Error(`${prefix} is longer than ${length}`);
  return prefix + fill.repeat(length - prefix.length);
}

/** The longest schedule expression EventBridge Scheduler's cron rules (and the schema) accept, at most `max` characters. */
export function longestSchedule(max: number): string {
  const list = (from: number, to: number, count: number) =>
    Array.from({ length: count }, (_v, i) => String(from + i))
      .filter((v) => Number(v) <= to)
      .join(',');
  let best = '';
  for (let minutes = 60; minutes >= 1; minutes -= 1) {
    for (let hours = 24; hours >= 1; hours -= 1) {
      for (const yearStep of ['', '/1', '/10', '/100', '/1000']) {
        const expression = `cron(${list(0, 59, minutes)} ${list(0, 23, hours)} ? ${list(1, 12, 12)} MON,TUE,WED,THU,FRI,SAT,SUN 1970-2199${yearStep})`;
        if (
          expression.length <= max &&
          expression.length > best.length &&
          scheduleProblem(expression) === null
        ) {
          best = expression;
        }
      }
    }
    if (best.length === max) break;
  }
  if (!best) throw new Error(`no schedule expression fits in ${max} characters`);
  return best;
}

/** The longest OU id Organizations writes (`ou-` + 32 + `-` + 32 characters), distinct per `tag`. */
function ouId(tag: string): string {
  return `ou-${padded(tag, 32, 'a')}-${'b'.repeat(32)}`;
}

/** An email address of exactly `length` characters, distinct per `index` (case-insensitively). */
function email(index: number, length: number): string {
  const domain = '@example.com';
  const local = `k${index}-`;
  return padded(local, length - domain.length, 'a') + domain;
}

export interface LargestConfigOptions {
  /** Free text and tag keys in a three-byte letter (see the file comment). @default false */
  readonly wide?: boolean;
  /** `guardrails.deploy`: the SCP or the managed policy (one config holds only one). @default 'scp' */
  readonly guardrails?: 'scp' | 'managed-policy';
}

/** The largest config the schema accepts (see the file comment). */
export function largestConfig(options: LargestConfigOptions = {}): ConfigInput {
  const letter = options.wide ? WIDE_LETTER : 'x';
  const text = (prefix: string, length: number) => padded(prefix, length, letter);
  const latin1 = (prefix: string, length: number) =>
    padded(prefix, length, options.wide ? LATIN1_LETTER : 'x');

  const regionsMax = maxAt('usage.regions');
  const byLength = [...COMMERCIAL_REGIONS].sort((a, b) => b.length - a.length || a.localeCompare(b));
  // Every commercial region, then (the schema allows a region listed twice) the longest names again.
  const regions = byLength.slice(0, regionsMax);
  for (let i = 0; regions.length < regionsMax; i += 1) regions.push(byLength[i % byLength.length] as string);

  const approverMax = maxAt('approvers.[]');
  const approverPrefix = 'arn:aws:iam::123456789012:role/keyguard/approvers/';
  const scpTargetLength = Math.min(maxAt('guardrails.scpTargetIds.[]'), 'ou-'.length + 32 + 1 + 32);
  const scheduleMax = maxAt('sweep.schedule');

  return {
    mode: 'enforce',
    maxAgeDays: maxAt('maxAgeDays'),
    gracePeriodHours: maxAt('gracePeriodHours'),
    tags: {
      owner: text('owner', maxAt('tags.owner')),
      purpose: text('purpose', maxAt('tags.purpose')),
      reviewCadence: text('review', maxAt('tags.reviewCadence')),
    },
    expiryWarningDays: Array.from(
      { length: maxAt('expiryWarningDays') },
      (_v, i) => maxAt('expiryWarningDays.[]') - i,
    ),
    finalWarningHours: maxAt('finalWarningHours'),
    maxApprovalDays: maxAt('maxApprovalDays'),
    approvers: Array.from({ length: maxAt('approvers') }, (_v, i) =>
      padded(`${approverPrefix}${i}-`, approverMax, 'a'),
    ),
    sweep: { schedule: longestSchedule(scheduleMax) },
    audit: {
      retentionDays: maxAt('audit.retentionDays'),
      digestSchedule: longestSchedule(maxAt('audit.digestSchedule')),
    },
    fallbackOwner: text('fallback', maxAt('fallbackOwner')),
    allowLongTermKeys: false,
    maxIdleDays: maxAt('maxIdleDays'),
    findings: { securityHub: true },
    decisionEvents: { ocsf: true },
    usage: { regions },
    guardrails: {
      exemptTag: {
        key: latin1('exempt', maxAt('guardrails.exemptTag.key')),
        value: latin1('value', maxAt('guardrails.exemptTag.value')),
      },
      deploy: options.guardrails ?? 'scp',
      scpTargetIds: Array.from({ length: maxAt('guardrails.scpTargetIds') }, (_v, i) => {
        const first = padded(`${i}`, 32, 'a');
        return `ou-${first}-${'b'.repeat(scpTargetLength - 'ou-'.length - 32 - 1)}`;
      }),
    },
    organization: {
      id: padded('o-', Math.min(maxAt('organization.id'), 'o-'.length + 32), 'a'),
      managementAccountId: '999988887777',
      // The same hub account as the deployability test's -c hubAccount (two different ones are refused).
      hubAccountId: '123456789012',
      targets: Array.from({ length: maxAt('organization.targets') }, (_v, i) => ouId(`t${i}`)),
      excludeAccounts: Array.from({ length: maxAt('organization.excludeAccounts') }, (_v, i) =>
        String(100000000000 + i),
      ),
      memberRoleName: padded('KeyGuardMember', maxAt('organization.memberRoleName'), 'M'),
      sweepConcurrency: maxAt('organization.sweepConcurrency'),
    },
    // The first override names accounts, the others OUs (longer): one override names either.
    overrides: Array.from({ length: maxAt('overrides') }, (_v, i) => ({
      ...(i === 0
        ? {
            accounts: Array.from({ length: maxAt('overrides.[].accounts') }, (_w, j) =>
              String(200000000000 + j),
            ),
          }
        : { ous: Array.from({ length: maxAt('overrides.[].ous') }, (_w, j) => ouId(`o${i}x${j}`)) }),
      mode: 'enforce' as const,
      maxAgeDays: maxAt('overrides.[].maxAgeDays'),
      gracePeriodHours: maxAt('overrides.[].gracePeriodHours'),
      allowLongTermKeys: false,
      maxIdleDays: maxAt('overrides.[].maxIdleDays'),
    })),
    notifications: {
      subscriptions: Array.from({ length: maxAt('notifications.subscriptions') }, (_v, i) => ({
        email: email(i, maxAt('notifications.subscriptions.[].email')),
        owners: Array.from({ length: maxAt('notifications.subscriptions.[].owners') }, (_w, j) =>
          text(`owner-${i}-${j}-`, maxAt('notifications.subscriptions.[].owners.[]')),
        ),
      })),
      chat: {
        slack: Array.from({ length: maxAt('notifications.chat.slack') }, (_v, i) => ({
          workspaceId: padded(`T${i}`, maxAt('notifications.chat.slack.[].workspaceId'), 'W'),
          channelId: padded(`C${i}`, maxAt('notifications.chat.slack.[].channelId'), 'c'),
        })),
        teams: Array.from({ length: maxAt('notifications.chat.teams') }, (_v, i) => {
          const suffix = '%40thread.tacv2';
          const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
          return {
            teamId: uuid(i),
            channelId: `${padded(`19%3A${i}x`, maxAt('notifications.chat.teams.[].channelId') - suffix.length, 'a')}${suffix}`,
            tenantId: uuid(100 + i),
          };
        }),
      },
    },
    leakDetection: {
      logGroups: Array.from({ length: maxAt('leakDetection.logGroups') }, (_v, i) =>
        padded(`/aws/app/group-${i}/`, maxAt('leakDetection.logGroups.[]'), 'g'),
      ),
      deactivateUnverified: true,
      slack: {
        schedule: longestSchedule(maxAt('leakDetection.slack.schedule')),
        channels: Array.from({ length: maxAt('leakDetection.slack.channels') }, (_v, i) =>
          padded(`#c${i}-`, maxAt('leakDetection.slack.channels.[]'), 'c'),
        ),
        initialLookbackHours: maxAt('leakDetection.slack.initialLookbackHours'),
        apiUrl: padded('https://slack.example.com/api/', maxAt('leakDetection.slack.apiUrl'), 'a'),
      },
      jira: {
        siteUrl: padded('https://acme', maxAt('leakDetection.jira.siteUrl'), 'a'),
        projects: Array.from({ length: maxAt('leakDetection.jira.projects') }, (_v, i) =>
          padded(`P${i}`, maxAt('leakDetection.jira.projects.[]'), 'X'),
        ),
        jql: text('labels = public AND summary ~ ', maxAt('leakDetection.jira.jql')),
        schedule: longestSchedule(maxAt('leakDetection.jira.schedule')),
        initialLookbackHours: maxAt('leakDetection.jira.initialLookbackHours'),
      },
      confluence: {
        siteUrl: padded('https://acme', maxAt('leakDetection.confluence.siteUrl'), 'c'),
        spaces: Array.from({ length: maxAt('leakDetection.confluence.spaces') }, (_v, i) =>
          padded(`S${i}`, maxAt('leakDetection.confluence.spaces.[]'), 'X'),
        ),
        schedule: longestSchedule(maxAt('leakDetection.confluence.schedule')),
        initialLookbackHours: maxAt('leakDetection.confluence.initialLookbackHours'),
      },
    },
  };
}

/** The list at a path of a config (for a nested path, the first item's list that is there) and its path. */
export function arrayAt(
  config: ConfigInput,
  path: (typeof ARRAY_PATHS)[number],
): { list: unknown[]; at: (string | number)[] } {
  let cur: unknown = config;
  const at: (string | number)[] = [];
  const steps = path.split('.');
  for (const [n, step] of steps.entries()) {
    if (step === '[]') {
      const next = steps[n + 1] as string;
      const i = (cur as Record<string, unknown>[]).findIndex((item) => next in item);
      at.push(i);
      cur = (cur as unknown[])[i];
    } else {
      at.push(step);
      cur = (cur as Record<string, unknown>)[step];
    }
  }
  if (!Array.isArray(cur)) throw new Error(`${path} is not a list in this config`);
  return { list: cur, at };
}
