import { SSMClient } from '@aws-sdk/client-ssm';
import { type Command, Option } from 'commander';
import { evaluate } from '../domain/evaluate';
import { effectivePolicy } from '../domain/org-policy';
import type { KnownKey } from '../domain/pipeline';
import {
  type Action,
  type Decision,
  EMPTY_HISTORY,
  type KeySnapshot,
  type OtherCredentials,
  type PermissionFinding,
  type Severity,
  topSeverity,
  type ViolationCode,
} from '../domain/types';
import { type Config, ConfigError, DEFAULT_CONFIG_FILE, loadConfig, policyVersion } from '../shared/config';
import { parseTimeInput } from '../shared/time-input';
import { visible } from '../shared/visible-text';
import {
  type AuditDeps,
  type AuditSource,
  type AuditSourceOptions,
  AuditUsageError,
  decisionsTableOption,
  defaultAuditDeps,
  keysTableOption,
  openAuditSource,
  sourceFailure,
  storeOption,
} from './audit';
import { exitCodesHelp } from './aws-errors';
import { choosePolicy, DeployedPolicyError, POLICY_PARAMETER_ENV } from './deployed-policy';
import { renderTable, type TableCell } from './format';
import { type CliIO, EXIT_INPUT, EXIT_OK, failure, writeStyled } from './io';
import {
  type AwsFlags,
  type AwsRun,
  addAwsOptions,
  awsRunOrFail,
  awsTarget,
  clientConfig,
} from './stack-outputs';

/**
 * `keyguard preview --config NEW.json`: what a policy change would do, before it acts. For every key the audit
 * store knows (the local store of `keyguard replay`, or the deployed keys and decisions tables), the key as its
 * latest decision recorded it is evaluated twice, at the same instant, with the same domain code as the functions
 * (`evaluate()`): under the current policy and under the new one. Only keys whose action or violations differ are
 * shown, so what is listed is the effect of the policy change alone (not of time passing since the last decision).
 *
 * Read-only: it reads the keys table and each key's latest decision, and writes, enforces and notifies nothing.
 *
 * The store keeps decisions, not the users' tags or IAM facts: the snapshot is rebuilt from the latest decision
 * (owner tag, presence of the purpose and review-cadence tags, broad permissions, other credentials). What cannot
 * be rebuilt (leaks, usage, reactivation, approvals) is not previewed, and the output says for how many keys.
 */

export interface PreviewOptions extends AuditSourceOptions {
  /** The new policy (required). */
  config?: string;
  /**
   * The current policy; default the deployed stack's effective policy, else `keyguard.config.json` in cwd when
   * present, else the built-in defaults.
   */
  current?: string;
  /** SSM parameter of the deployed effective policy; default KEYGUARD_POLICY_PARAMETER. */
  policyParameter?: string;
  json?: boolean;
  /** Evaluate as of this instant (ISO-8601 with a zone, or YYYY-MM-DD); default now. */
  at?: string;
  /** Repeatable `ACCOUNT=ou-a/ou-b`: an account's OUs from the root down, so OU overrides can apply to it. */
  ouPath?: string[];
}

const OU_ID = /^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$/;

/** `--ou-path ACCOUNT=ou-a/ou-b` (repeatable) as account id → OU ids from the root down; errors name the value. */
export function parseOuPaths(values: readonly string[] | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const v of values ?? []) {
    const m = /^(\d{12})=(.+)$/.exec(v.trim());
    const ous = m ? (m[2] as string).split('/') : [];
    if (!m || ous.some((o) => !OU_ID.test(o))) {
      throw new AuditUsageError(
        `--ou-path: ${JSON.stringify(v)} is not ACCOUNT=OU[/OU...] (a 12-digit account id, then its OU ids from ` +
          'the root down, e.g. 111122223333=ou-ab12-prod0001/ou-ab12-team0001)',
      );
    }
    out.set(m[1] as string, ous);
  }
  return out;
}

export interface PreviewDeps extends AuditDeps {
  /** The clock; default the wall clock. */
  now?: () => Date;
  /** SSM, for the deployed effective policy; default a client of the run's region and profile. */
  ssm?: () => SSMClient;
}

/**
 * The current policy: --current FILE, else the deployed stack's effective policy (lambda/cli/deployed-policy.ts:
 * named by --policy-parameter or KEYGUARD_POLICY_PARAMETER, or, when the deployed tables are read, by the stack's
 * output), else ./keyguard.config.json or the built-in defaults. Over the local store the stack is not read.
 */
async function currentPolicy(
  opts: PreviewOptions,
  io: CliIO,
  deps: PreviewDeps,
): Promise<{ config: Config; source: string }> {
  if (opts.current !== undefined) return loaded(opts.current, io.cwd);
  const env = deps.env ?? process.env;
  const { stack } = deps;
  const deployedTables = opts.table !== undefined;
  const chosen = await choosePolicy({ policyParameter: opts.policyParameter }, io, {
    env,
    ssm: deps.ssm ?? (() => new SSMClient(clientConfig(stack?.target ?? awsTarget({}, env)))),
    ...(stack && deployedTables ? { stackParameter: () => stack.value('policyParameter') } : {}),
  });
  return { config: chosen.config, source: chosen.label };
}

export type PreviewGroup =
  | 'would be deactivated'
  | 'would be notified'
  | 'no longer flagged'
  | 'other changes';
const GROUPS: readonly PreviewGroup[] = [
  'would be deactivated',
  'would be notified',
  'no longer flagged',
  'other changes',
];

/** Violations that come from facts the store does not keep (leaks, usage, reactivation): not previewed. */
const NOT_REBUILT: ReadonlySet<ViolationCode> = new Set<ViolationCode>([
  'LEAKED',
  'UNUSED',
  'REACTIVATED_WITHOUT_APPROVAL',
]);

interface Side {
  action: Action;
  /** The policy's mode: a DEACTIVATE in `audit` mode is recorded and notified, never applied. */
  mode: 'audit' | 'enforce';
  violations: ViolationCode[];
  /** The worst of them (`info` when none): colours the cell on a terminal. */
  severity: Severity | 'info';
  policyVersion: string;
  /** `account:<id>` or `ou:<id>` when an organization override applied. */
  override: string | null;
  /** Who the policy names as the key's owner (the fallback owner may differ between policies). */
  owner: string | null;
}

export interface PreviewChange {
  group: PreviewGroup;
  accountId: string;
  userName: string;
  keyId: string;
  /** The owner under the new policy (who its notices would reach). */
  owner: string | null;
  current: Side;
  next: Side;
}

function loaded(path: string | undefined, cwd: string): { config: Config; source: string } {
  const l = loadConfig(path, cwd);
  return { config: l.config, source: l.source === 'defaults' ? 'built-in defaults' : l.source };
}

/** The key as its latest decision recorded it, in the terms of `config` (its tag keys). */
export function snapshotOf(known: KnownKey, d: Decision, config: Config): KeySnapshot {
  const has = (c: ViolationCode) => d.violations.some((v) => v.code === c);
  const userTags: Record<string, string> = {};
  if (d.owner.source === 'tag' && d.owner.value) userTags[config.tags.owner] = d.owner.value;
  if (!has('MISSING_PURPOSE')) userTags[config.tags.purpose] = '(set)';
  if (!has('MISSING_REVIEW_CADENCE')) {
    const overdue = d.violations.find((v) => v.code === 'REVIEW_OVERDUE');
    const days = overdue ? /every (\d+) days/.exec(overdue.detail)?.[1] : undefined;
    // The cadence's value is not kept: one the review is never due under, unless the decision said it was overdue.
    userTags[config.tags.reviewCadence] = days ? `${days}d` : '100y';
  }
  const permissions: PermissionFinding[] = d.violations
    .filter((v) => v.code === 'BROAD_PERMISSIONS')
    .map((v) => ({
      policy: '(as recorded)',
      via: 'user',
      severity: v.severity === 'high' ? 'high' : 'low',
      reason: v.detail.replace(/^user [^:]*: /, ''),
    }));
  const other = d.violations.find((v) => v.code === 'USER_HAS_OTHER_CREDENTIALS');
  const otherCredentials: OtherCredentials | null = other
    ? {
        activeAccessKeys: Number(/(\d+) active access key/.exec(other.detail)?.[1] ?? 0),
        consolePassword: other.detail.includes('console password'),
      }
    : null;
  return {
    keyId: known.keyId,
    userName: known.userName,
    accountId: known.accountId,
    status: d.applied ? 'Inactive' : d.status,
    createdAt: d.createdAt ?? known.createdAt,
    expiresAt: d.expiresAt ?? known.expiresAt,
    userTags,
    creator: known.creator,
    permissions,
    otherCredentials,
  };
}

/** Whether the key would actually be deactivated (or deleted): only in `enforce` mode. */
function enforced(s: Side): boolean {
  return s.mode === 'enforce' && (s.action === 'DEACTIVATE' || s.action === 'DELETE');
}

function groupOf(current: Side, next: Side): PreviewGroup {
  if (enforced(next)) return enforced(current) ? 'other changes' : 'would be deactivated';
  if (next.action !== 'ALLOW') return current.action === 'ALLOW' ? 'would be notified' : 'other changes';
  return current.action !== 'ALLOW' ? 'no longer flagged' : 'other changes';
}

function sameSide(a: Side, b: Side): boolean {
  return (
    a.action === b.action && enforced(a) === enforced(b) && a.violations.join(',') === b.violations.join(',')
  );
}

function actionText(s: Side): string {
  const a =
    s.action === 'DEACTIVATE' || s.action === 'DELETE'
      ? `${s.action} (${enforced(s) ? 'applied' : 'audit mode: not applied'})`
      : s.action;
  return s.override ? `${a} [${s.override}]` : a;
}

/** The side's violation codes (`-` when none), coloured on a terminal by the worst of them. */
function violationsText(s: Side): TableCell {
  return { text: s.violations.join(',') || '-', severity: s.severity };
}

function parseAt(value: string | undefined, now: Date): Date {
  if (value === undefined) return now;
  const t = parseTimeInput(value);
  if (t.kind === 'date') return t.start;
  if (t.kind === 'instant') return t.at;
  throw new AuditUsageError(
    `--at: got ${JSON.stringify(value)}; allowed: a date YYYY-MM-DD (UTC) or an ISO-8601 timestamp with a zone`,
  );
}

interface Tally {
  [group: string]: number;
}

function bump(m: Map<string, Tally>, key: string, group: PreviewGroup): void {
  const t = m.get(key) ?? {};
  t[group] = (t[group] ?? 0) + 1;
  m.set(key, t);
}

function tallyText(t: Tally): string {
  return GROUPS.filter((g) => t[g])
    .map((g) => `${g} ${t[g]}`)
    .join(', ');
}

/** Runs `keyguard preview`; returns the exit code. Never calls process.exit. */
export async function runPreview(opts: PreviewOptions, io: CliIO, deps: PreviewDeps): Promise<number> {
  let source: AuditSource | undefined;
  try {
    if (opts.config === undefined || opts.config.trim() === '')
      throw new AuditUsageError(
        '--config: the new policy file is required (keyguard preview --config NEW.json)',
      );
    let next: { config: Config; source: string };
    let current: { config: Config; source: string };
    try {
      next = loaded(opts.config, io.cwd);
      current = await currentPolicy(opts, io, deps);
    } catch (err) {
      if (err instanceof ConfigError || err instanceof DeployedPolicyError)
        throw new AuditUsageError(err.message);
      throw err;
    }
    const at = parseAt(opts.at, (deps.now ?? (() => new Date()))());
    const ouPaths = parseOuPaths(opts.ouPath);
    const nextVersion = policyVersion(next.config);
    const currentVersion = policyVersion(current.config);

    source = await openAuditSource(opts, io, deps, true);
    const known = await source.log.allKnownKeys();

    const changes: PreviewChange[] = [];
    const recordedUnder = new Map<string, number>();
    let evaluated = 0;
    let noDecision = 0;
    let deleted = 0;
    let approved = 0;
    let notRebuilt = 0;
    /** Accounts whose OU path is unknown while an OU override exists: evaluated without OU overrides. */
    const ouUnknown = new Set<string>();
    const place = (config: Config, version: string, accountId: string) => {
      // The store does not keep the accounts' OU paths: without --ou-path, overrides naming the account apply and
      // OU overrides cannot.
      const ouPath = ouPaths.get(accountId);
      if (ouPath === undefined && config.overrides.some((o) => (o.ous?.length ?? 0) > 0))
        ouUnknown.add(accountId);
      return effectivePolicy(config, version, config.overrides, { accountId, ouPath: ouPath ?? [] });
    };

    for (const k of known.sort((a, b) =>
      a.accountId === b.accountId ? (a.keyId < b.keyId ? -1 : 1) : a.accountId < b.accountId ? -1 : 1,
    )) {
      if (k.status === 'Deleted') {
        deleted++;
        continue;
      }
      const d = k.lastDecisionId
        ? await source.log.getDecision(k.accountId, k.keyId, k.lastDecisionId)
        : null;
      if (!d) {
        noDecision++;
        continue;
      }
      if ((d.waived?.length ?? 0) > 0) {
        approved++;
        continue;
      }
      if (d.violations.some((v) => NOT_REBUILT.has(v.code))) {
        notRebuilt++;
        continue;
      }
      recordedUnder.set(d.policyVersion, (recordedUnder.get(d.policyVersion) ?? 0) + 1);
      evaluated++;
      const snapshot = snapshotOf(k, d, current.config);
      const side = (config: Config, version: string): Side => {
        const placed = place(config, version, k.accountId);
        const decision = evaluate(snapshot, {
          config: placed.policy,
          policyVersion: placed.policyVersion,
          now: at,
          trigger: { kind: 'sweep' },
          decisionId: `preview#${k.keyId}`,
          history: k.history ?? EMPTY_HISTORY,
        });
        return {
          action: decision.action,
          mode: placed.policy.mode,
          violations: decision.violations.map((v) => v.code).sort(),
          severity: topSeverity(decision.violations),
          policyVersion: placed.policyVersion,
          override: placed.appliedOverride,
          owner: decision.owner.value,
        };
      };
      const now = side(current.config, currentVersion);
      const then = side(next.config, nextVersion);
      if (sameSide(now, then)) continue;
      changes.push({
        group: groupOf(now, then),
        accountId: k.accountId,
        userName: k.userName,
        keyId: k.keyId,
        owner: then.owner,
        current: now,
        next: then,
      });
    }

    const byOwner = new Map<string, Tally>();
    const byAccount = new Map<string, Tally>();
    for (const c of changes) {
      bump(byOwner, c.owner ?? '(none)', c.group);
      bump(byAccount, c.accountId, c.group);
    }
    const notes: string[] = [];
    const otherRecorded = [...recordedUnder.entries()].filter(([v]) => v !== currentVersion);
    if (otherRecorded.length > 0)
      notes.push(
        `the latest decision of ${otherRecorded.reduce((a, [, n]) => a + n, 0)} key(s) was made under ` +
          `${otherRecorded.map(([v, n]) => `policy ${v} (${n})`).join(', ')}, not the current policy ${currentVersion}: ` +
          'their tags are read as that decision recorded them',
      );
    if (JSON.stringify(current.config.tags) !== JSON.stringify(next.config.tags))
      notes.push(
        'the new policy reads other tag keys: the store does not keep tag values, so tags under the new keys ' +
          'are taken as absent',
      );
    if (ouUnknown.size > 0)
      notes.push(
        `OU overrides not applied: the OU path of ${ouUnknown.size} account(s) (${[...ouUnknown].sort().join(', ')}) ` +
          'is not known to the store (give it with --ou-path); overrides naming accounts are applied',
      );
    const skipped = { deleted, noDecision, approved, notRebuilt };
    if (approved > 0)
      notes.push(
        `${approved} key(s) with an approval on their latest decision not previewed (approvals are not read)`,
      );
    if (notRebuilt > 0)
      notes.push(
        `${notRebuilt} key(s) flagged LEAKED, UNUSED or REACTIVATED_WITHOUT_APPROVAL not previewed ` +
          '(leaks, usage and reactivations are not kept with the key)',
      );

    if (opts.json) {
      io.stdout.write(
        `${JSON.stringify({
          source: source.label,
          at: at.toISOString(),
          current: { policyVersion: currentVersion, config: current.source },
          new: { policyVersion: nextVersion, config: next.source },
          keys: { known: known.length, evaluated, changed: changes.length, skipped },
          changes,
          byOwner: Object.fromEntries(byOwner),
          byAccount: Object.fromEntries(byAccount),
          notes,
          written: false,
        })}\n`,
      );
      return EXIT_OK;
    }
    const out: string[] = [
      `Preview (read-only: nothing written, nobody notified) of ${source.label} as of ${at.toISOString()}`,
      `Current policy ${currentVersion} (${current.source}) -> new policy ${nextVersion} (${next.source})`,
      `Keys: ${known.length} known, ${evaluated} evaluated, ${changes.length} would change`,
    ];
    // The tables may hold their own colour sequences (writeStyled); every other line goes through the guard.
    const tables = new Set<string>();
    for (const g of GROUPS) {
      const rows = changes.filter((c) => c.group === g);
      if (rows.length === 0) continue;
      const table = renderTable(
        ['ACCOUNT', 'USER', 'KEY ID', 'OWNER', 'NOW', 'NEW', 'VIOLATIONS NOW', 'VIOLATIONS NEW'],
        rows.map((c) => [
          c.accountId,
          c.userName,
          c.keyId,
          c.owner ?? '(none)',
          actionText(c.current),
          actionText(c.next),
          violationsText(c.current),
          violationsText(c.next),
        ]),
        io.terminal,
      );
      tables.add(table);
      out.push('', `${g[0]?.toUpperCase()}${g.slice(1)} (${rows.length}):`, table);
    }
    if (changes.length > 0) {
      out.push('');
      out.push(
        `By owner: ${[...byOwner.entries()].map(([o, t]) => `${visible(o)} (${tallyText(t)})`).join('; ')}`,
      );
      out.push(
        `By account: ${[...byAccount.entries()].map(([a, t]) => `${a} (${tallyText(t)})`).join('; ')}`,
      );
    } else {
      out.push('', 'No key would change.');
    }
    for (const n of notes) out.push(`Note: ${n}`);
    for (const line of out) {
      if (tables.has(line)) writeStyled(io.stdout, `${line}\n`);
      else io.stdout.write(`${line}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    if (err instanceof AuditUsageError && source === undefined) {
      failure(io, err.message);
      return EXIT_INPUT;
    }
    return await sourceFailure(err, io, 'preview', source);
  } finally {
    await source?.close();
  }
}

const PREVIEW_HELP = `
Both policies are evaluated over the same keys at the same instant, so only the policy change shows. The key is
taken as its latest decision recorded it (the store keeps no tag values: the owner tag, and whether the purpose
and review-cadence tags were set, come from that decision); keys flagged LEAKED, UNUSED or
REACTIVATED_WITHOUT_APPROVAL, and keys with an approval, are counted and not previewed. With organization
overrides, overrides naming an account apply; OU overrides apply only to accounts whose OUs --ou-path gives
(the store does not keep OU paths: a note names the other accounts).

${exitCodesHelp({
  0: 'preview printed (whether or not keys change)',
  2: 'e.g. a bad config, an unreadable store',
})}

Examples:
  $ keyguard preview --config strict.json                     # over the local store (.keyguard)
  $ keyguard preview --config strict.json --current keyguard.config.json --json
  $ keyguard preview --config strict.json --table keyguard-decisions --keys-table keyguard-keys
`;

/** Adds `keyguard preview` to the program. */
export function registerPreviewCommand(
  program: Command,
  io: CliIO,
  setExitCode: (n: number) => void,
  deps: (aws?: AwsRun) => PreviewDeps = (aws) => defaultAuditDeps(process.env, aws),
): Command {
  const preview = program
    .command('preview')
    .summary('what a policy change would do to the known keys, before it acts (read-only)')
    .description(
      'For every key the audit store knows, the action under the current policy and under a new one; only keys ' +
        'whose action or violations change are shown, grouped, with counts per owner and per account. Writes ' +
        'nothing and notifies nobody.',
    )
    .requiredOption('-c, --config <file>', 'the new policy config file')
    .option(
      '--current <file>',
      `the current policy config file (default: the deployed stack's effective policy, else ./${DEFAULT_CONFIG_FILE} ` +
        'if present, else the built-in defaults)',
    )
    .addOption(
      new Option(
        '--policy-parameter <name>',
        'SSM parameter of the deployed effective policy, the current policy (stack output EffectivePolicyParameterName)',
      ).env(POLICY_PARAMETER_ENV),
    )
    .addOption(storeOption())
    .addOption(decisionsTableOption())
    .addOption(keysTableOption('the keys to preview (required with --table)'))
    .option('--at <time>', 'evaluate as of this time (YYYY-MM-DD, UTC, or ISO-8601 with a zone; default now)')
    .option(
      '--ou-path <account=ous>',
      "an account's OU ids from the root down, e.g. 111122223333=ou-ab12-prod0001/ou-ab12-team0001, so OU " +
        'overrides apply to it (repeatable)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      '--json',
      'one JSON object on stdout: the changes, the counts per owner and account, and the notes',
    )
    .addHelpText('after', PREVIEW_HELP);
  return addAwsOptions(preview).action(async (opts: PreviewOptions & AwsFlags) => {
    const aws = awsRunOrFail(opts, io);
    setExitCode(aws ? await runPreview(opts, io, deps(aws)) : EXIT_INPUT);
  });
}
