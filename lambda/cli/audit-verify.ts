import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { S3AuditArchive, signingPublicKey } from '../adapters/audit-archive';
import { checkDigests, type DigestCheck } from '../domain/audit-digest';
import { type RecordProblem, verifyRecord } from '../domain/audit-verify';
import { visible } from '../shared/visible-text';
import {
  type AuditDeps,
  type AuditSource,
  AuditUsageError,
  DECISIONS_TABLE_ENV,
  decisionsTableOption,
  defaultAuditDeps,
  knownSourceProblem,
  openAuditSource,
  storeOption,
} from './audit';
import { exitCodesHelp, tagAwsErrors } from './aws-errors';
import { messageOf } from './inputs';
import { type CliIO, EXIT_INPUT, EXIT_OK, problem } from './io';
import { DEFAULT_STORE_DIR } from './replay';
import {
  type AwsFlags,
  type AwsRun,
  type AwsTarget,
  addAwsOptions,
  awsRunOrFail,
  awsTarget,
  clientConfig,
  StackLookupError,
} from './stack-outputs';

/**
 * `keyguard audit verify`: proves the decision record has not been altered since it was written, or names the
 * first record that was (domain/audit-chain.ts, domain/audit-verify.ts). Read-only.
 */

/** Tamper evidence found: a record altered, missing, out of chain, or the signed digest contradicted. */
export const EXIT_TAMPERED = 1;

export interface VerifyOptions {
  store?: string;
  table?: string | true;
  /** The audit archive bucket holding the signed digests (stack output AuditArchiveBucketName). */
  archiveBucket?: string;
  json?: boolean;
}

export const ARCHIVE_BUCKET_ENV = 'KEYGUARD_ARCHIVE_BUCKET';

export interface VerifyDeps extends AuditDeps {
  /** Reads and checks the signed digests of an archive bucket. @default S3 and KMS through the SDK chain */
  digests?: (bucket: string) => Promise<DigestCheck>;
  /** Region and profile of the S3 and KMS clients. @default AWS_REGION (else us-east-1) and AWS_PROFILE */
  target?: AwsTarget;
}

/**
 * Every digest of the bucket, each signature checked locally with the public key from kms:GetPublicKey (the
 * private key never leaves KMS; verifying needs kms:GetPublicKey, s3:ListBucket and s3:GetObject only).
 */
export async function archiveDigests(
  bucket: string,
  env: NodeJS.ProcessEnv = process.env,
  target: AwsTarget = awsTarget({}, env),
): Promise<DigestCheck> {
  // Tagged: a failure names S3 or KMS and its operation, not the decisions table's DynamoDB (aws-errors.ts).
  const s3 = tagAwsErrors(new S3Client(clientConfig(target)));
  const kms = tagAwsErrors(new KMSClient(clientConfig(target)));
  const { digests, unreadable } = await new S3AuditArchive(s3, bucket, 1).listDigests();
  const keys = new Map<string, Uint8Array>();
  for (const id of new Set(digests.map((d) => d.signingKeyId))) keys.set(id, await signingPublicKey(kms, id));
  const check = checkDigests(digests, keys);
  // An object under digests/ that is not a digest was written by someone: named by its object key.
  const planted = unreadable.map((u) => ({ digestTime: u.key, detail: u.reason }));
  return { ...check, problems: [...planted, ...check.problems] };
}

function where(p: RecordProblem): string {
  const seq = 'seq' in p && typeof p.seq === 'number' ? ` seq ${p.seq}` : '';
  const decision = 'decisionId' in p && p.decisionId ? ` decision ${p.decisionId}` : '';
  return `key ${p.accountId}/${p.keyId}${seq}${decision}`;
}

function firstProblem(digest: DigestCheck['problems'], record: RecordProblem[]): string {
  const d = digest[0];
  if (d) return `digest of ${d.digestTime}`;
  return where(record[0] as RecordProblem);
}

export async function runAuditVerify(opts: VerifyOptions, io: CliIO, deps: VerifyDeps): Promise<number> {
  let source: AuditSource | undefined;
  try {
    const env = deps.env ?? process.env;
    const store = opts.store?.trim();
    // The environment's bucket goes with the deployed table; an explicit --store has no digests to check.
    let bucket =
      opts.archiveBucket?.trim() || (store ? undefined : env[ARCHIVE_BUCKET_ENV]?.trim()) || undefined;
    if (bucket && store) {
      throw new AuditUsageError(
        '--archive-bucket: the embedded store has no signed digests; use it with --table',
      );
    }
    source = await openAuditSource(opts, io, deps, false);
    // The deployed table's archive is the stack's (output AuditArchiveBucketName) unless one is named.
    if (!bucket && source.deployed && deps.stack) {
      try {
        bucket = await deps.stack.value('archiveBucket');
      } catch (err) {
        if (err instanceof StackLookupError) throw new AuditUsageError(err.message);
        throw err;
      }
      deps.stack.announce();
    }
    const target = deps.target;
    const check = bucket ? await (deps.digests ?? ((b) => archiveDigests(b, env, target)))(bucket) : null;
    const result = await verifyRecord(source.log, check?.signed ?? null);
    const digestProblems = check?.problems ?? [];
    const failures = digestProblems.length + result.problems.length;
    const legacyCount = result.legacy.reduce((n, l) => n + l.decisionIds.length, 0);
    if (opts.json) {
      const out = {
        source: source.label,
        intact: failures === 0,
        ...result,
        digestProblems,
        orphanDigests: check?.orphans ?? [],
      };
      io.stdout.write(`${JSON.stringify(out)}\n`);
    } else {
      for (const p of digestProblems) {
        io.stdout.write(`DIGEST: digest of ${visible(p.digestTime)}: ${visible(p.detail)}\n`);
      }
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
          ? `Signed digests: ${result.digest.digests}, the latest ${result.digest.time}; ${result.digest.heads} signed head(s) checked against the table; ${result.unsignedLinks} link(s) not yet signed.`
          : bucket
            ? 'Signed digests: none in the archive yet.'
            : 'Signed digests: not checked (no --archive-bucket): deleting the newest decisions of a key is detectable only against a signed digest.',
        check?.orphans.length
          ? `Orphan digests (signed, not chained to: a digest run that stopped early): ${check.orphans.length}.`
          : '',
        failures
          ? `NOT INTACT: ${failures} problem(s); the first: ${visible(firstProblem(digestProblems, result.problems))}.`
          : 'Intact: every chained decision matches its hash. Read-only: nothing was changed.',
      ].filter(Boolean);
      io.stdout.write(`${lines.join('\n')}\n`);
    }
    return failures ? EXIT_TAMPERED : EXIT_OK;
  } catch (err) {
    // A verification that could not finish is never "tampered" (1) nor "intact" (0).
    if (!(await knownSourceProblem(err, io, 'audit verify', source))) {
      problem(io, 'audit verify', `could not complete: ${messageOf(err)}`);
    }
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
decisions table (--table or ${DECISIONS_TABLE_ENV}); permissions: dynamodb:Scan and dynamodb:Query on it. With
--archive-bucket (or ${ARCHIVE_BUCKET_ENV}) every signed digest in the audit archive is read, its signature
checked locally with the key's public half (kms:GetPublicKey; s3:ListBucket, s3:GetObject), the chain of
digests followed back, and every head they signed compared with the table.

${exitCodesHelp({
  0: 'intact (legacy decisions recorded before chaining are listed as not covered)',
  1:
    'here: tamper evidence: an altered, missing or unchained record, a gap, a chain shorter than or different from a ' +
    'signed head, a bad digest signature or a digest missing from the chain of digests (each named)',
  2: 'could not verify, for any reason: a verification that could not finish is never reported as 1',
})}
`;

/** Adds `verify` under `keyguard audit`. */
export function registerAuditVerifyCommand(
  audit: Command,
  io: CliIO,
  setExitCode: (n: number) => void,
  deps: (aws?: AwsRun) => VerifyDeps = (aws) => ({
    ...defaultAuditDeps(process.env, aws),
    ...(aws ? { target: aws.target } : {}),
  }),
): Command {
  const verify = audit
    .command('verify')
    .summary('prove the decision record has not been altered (hash chains, signed digests)')
    .description(
      'Verify the hash chain of every key in the audit store or deployed decisions table, and name the first ' +
        'altered, missing or out-of-chain record.',
    )
    .addOption(storeOption())
    .addOption(decisionsTableOption())
    .option(
      '--archive-bucket <name>',
      `audit archive bucket: check the signed digests too (stack output AuditArchiveBucketName; default: $${ARCHIVE_BUCKET_ENV})`,
    )
    .option('--json', 'the full result as one JSON object on stdout')
    .addHelpText('after', VERIFY_HELP);
  return addAwsOptions(verify).action(async (_opts: VerifyOptions, cmd: Command) => {
    // `audit` declares the same --store/--table, and commander lets the parent parse them: merge both levels.
    const opts = cmd.optsWithGlobals<VerifyOptions & AwsFlags>();
    const aws = awsRunOrFail(opts, io);
    setExitCode(aws ? await runAuditVerify(opts, io, deps(aws)) : EXIT_INPUT);
  });
}
