import type { Command } from 'commander';
import { type RecordProblem, type SignedHeads, verifyRecord } from '../domain/audit-verify';
import {
  type AuditDeps,
  type AuditSource,
  AuditUsageError,
  awsFailure,
  DECISIONS_TABLE_ENV,
  decisionsTableOption,
  defaultAuditDeps,
  openAuditSource,
  storeOption,
} from './audit';
import { messageOf } from './inputs';
import { type CliIO, EXIT_INPUT, EXIT_OK, problem } from './io';
import { DEFAULT_STORE_DIR } from './replay';
import { visible } from './terminal-text';

/**
 * `keyguard audit verify`: proves the decision record has not been altered since it was written, or names the
 * first record that was (domain/audit-chain.ts, domain/audit-verify.ts). Read-only.
 */

/** Tamper evidence found: a record altered, missing, out of chain, or the signed digest contradicted. */
export const EXIT_TAMPERED = 1;

export interface VerifyOptions {
  store?: string;
  table?: string;
  json?: boolean;
}

export interface VerifyDeps extends AuditDeps {
  /** The heads the latest signed digest vouches for (signature already checked), or null when there is none. */
  signedHeads?: (opts: VerifyOptions) => Promise<SignedHeads | null>;
}

function where(p: RecordProblem): string {
  const seq = 'seq' in p && typeof p.seq === 'number' ? ` seq ${p.seq}` : '';
  const decision = 'decisionId' in p && p.decisionId ? ` decision ${p.decisionId}` : '';
  return `key ${p.accountId}/${p.keyId}${seq}${decision}`;
}

export async function runAuditVerify(opts: VerifyOptions, io: CliIO, deps: VerifyDeps): Promise<number> {
  let source: AuditSource | undefined;
  try {
    source = await openAuditSource(opts, io, deps, false);
    const signed = deps.signedHeads ? await deps.signedHeads(opts) : null;
    const result = await verifyRecord(source.log, signed);
    const legacyCount = result.legacy.reduce((n, l) => n + l.decisionIds.length, 0);
    if (opts.json) {
      io.stdout.write(
        `${JSON.stringify({ source: source.label, intact: result.problems.length === 0, ...result })}\n`,
      );
    } else {
      for (const p of result.problems) {
        io.stdout.write(`${p.kind.toUpperCase()}: ${visible(where(p))}: ${visible(p.detail)}\n`);
      }
      const lines = [
        `Checked: ${result.keys} key(s), ${result.links} chained decision(s) (${visible(source.label)}).`,
        legacyCount
          ? `Legacy, not covered: ${legacyCount} decision(s) of ${result.legacy.length} key(s) recorded before chaining began.`
          : '',
        result.chainedTwice.length
          ? `Chained twice (concurrent redelivery, not a rewrite): ${result.chainedTwice.length} decision(s).`
          : '',
        result.digest
          ? `Signed digest: ${result.digest.time} (${result.digest.digests} digest(s), signatures valid, ${result.digest.heads} head(s) checked); ${result.unsignedLinks} link(s) newer than it, not yet signed.`
          : 'Signed digest: none checked (hash chains only: a deletion of the newest decisions of a key is not detectable without one).',
        result.problems.length
          ? `NOT INTACT: ${result.problems.length} problem(s); the first: ${visible(where(result.problems[0] as RecordProblem))}.`
          : 'Intact: every chained decision matches its hash. Read-only: nothing was changed.',
      ].filter(Boolean);
      io.stdout.write(`${lines.join('\n')}\n`);
    }
    return result.problems.length ? EXIT_TAMPERED : EXIT_OK;
  } catch (err) {
    // A verification that could not finish is never "tampered" (1) nor "intact" (0).
    if (err instanceof AuditUsageError) io.stderr.write(`keyguard: ${visible(err.message)}\n`);
    else if ((err as { name?: unknown } | null)?.name === 'ResourceNotFoundException') {
      problem(io, 'audit verify', source?.notFound ?? messageOf(err));
    } else problem(io, 'audit verify', awsFailure(err) ?? `could not complete: ${messageOf(err)}`);
    return EXIT_INPUT;
  } finally {
    await source?.close();
  }
}

const VERIFY_HELP = `
Each decision is sealed into its key's hash chain when it is recorded (SHA-256 over the stored item and the
previous link). verify recomputes every hash from the stored items, checks each chain has no gaps and that every
decision recorded since chaining began is chained, and, when a signed digest of chain heads is available,
checks the signature and that no chain ends before (or differs at) the head it signed.

Source: the embedded store of \`keyguard replay\` (--store, default ${DEFAULT_STORE_DIR}) or the deployed
decisions table (--table or ${DECISIONS_TABLE_ENV}); permissions: dynamodb:Scan and dynamodb:Query on it.

Exit codes:
  0  intact (legacy decisions recorded before chaining are listed as not covered)
  1  tamper evidence: an altered, missing or unchained record, a gap, or a contradicted digest (each named)
  2  could not verify: bad usage, no store, no credentials, access denied, another AWS error
`;

/** Adds `verify` under `keyguard audit`. */
export function registerAuditVerifyCommand(
  audit: Command,
  io: CliIO,
  setExitCode: (n: number) => void,
  deps: () => VerifyDeps = () => defaultAuditDeps(),
): Command {
  return audit
    .command('verify')
    .summary('prove the decision record has not been altered (hash chains, signed digests)')
    .description(
      'Verify the hash chain of every key in the audit store or deployed decisions table, and name the first ' +
        'altered, missing or out-of-chain record.',
    )
    .addOption(storeOption())
    .addOption(decisionsTableOption())
    .option('--json', 'the full result as one JSON object on stdout')
    .addHelpText('after', VERIFY_HELP)
    .action(async (_opts: VerifyOptions, cmd: Command) => {
      // `audit` declares the same --store/--table, and commander lets the parent parse them: merge both levels.
      setExitCode(await runAuditVerify(cmd.optsWithGlobals<VerifyOptions>(), io, deps()));
    });
}
