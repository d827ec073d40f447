import { type ChainLink, type ChainProblem, type StoredDecisionItem, verifyKeyChain } from './audit-chain';

/**
 * `keyguard audit verify` over a whole decision record: every key's chain (audit-chain.ts), then the latest
 * signed digest of chain heads against the table. Pure: reads through the port below.
 */

export interface ChainSource {
  /** Every key the record holds decisions or a chain about. */
  keysOnRecord(): Promise<{ accountId: string; keyId: string }[]>;
  chainLinks(accountId: string, keyId: string): Promise<ChainLink[]>;
  decisionItems(accountId: string, keyId: string): Promise<StoredDecisionItem[]>;
}

/** A chain head as signed in a digest. */
export interface SignedHead {
  accountId: string;
  keyId: string;
  seq: number;
  hash: string;
}

/** The heads a verified (signatures checked) chain of digests vouches for: every head of every digest. */
export interface SignedHeads {
  /** The latest digest's time. */
  time: string;
  /** How many digests were checked. */
  digests: number;
  heads: SignedHead[];
}

export type RecordProblem =
  | (ChainProblem & { accountId: string; keyId: string })
  | {
      kind: 'behind-digest' | 'digest-mismatch' | 'chain-missing';
      accountId: string;
      keyId: string;
      seq: number;
      decisionId?: string;
      detail: string;
    };

export interface VerifyResult {
  keys: number;
  links: number;
  /** Decisions recorded before chaining began, per key: present, not covered. */
  legacy: { accountId: string; keyId: string; decisionIds: string[] }[];
  chainedTwice: { accountId: string; keyId: string; decisionId: string }[];
  /** Links newer than the latest signed digest (chained, not yet signed). */
  unsignedLinks: number;
  /** The digest the heads were checked against, if any. */
  digest: { time: string; digests: number; heads: number } | null;
  problems: RecordProblem[];
}

const keyOf = (accountId: string, keyId: string) => `${accountId}#${keyId}`;

/** Keys read at once: a deployed table with tens of thousands of keys is two Queries per key. */
const READ_CONCURRENCY = 8;

/** Each key's links and decision items, in the order of `keys`, a few keys in flight (memory: those few). */
async function* readKeys(
  source: ChainSource,
  keys: readonly { accountId: string; keyId: string }[],
): AsyncGenerator<{ accountId: string; keyId: string; links: ChainLink[]; items: StoredDecisionItem[] }> {
  for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
    const batch = keys.slice(i, i + READ_CONCURRENCY);
    const loaded = await Promise.all(
      batch.map(async (k) => ({
        ...k,
        links: await source.chainLinks(k.accountId, k.keyId),
        items: await source.decisionItems(k.accountId, k.keyId),
      })),
    );
    yield* loaded;
  }
}

export async function verifyRecord(source: ChainSource, signed: SignedHeads | null): Promise<VerifyResult> {
  const result: VerifyResult = {
    keys: 0,
    links: 0,
    legacy: [],
    chainedTwice: [],
    unsignedLinks: 0,
    digest: signed ? { time: signed.time, digests: signed.digests, heads: signed.heads.length } : null,
    problems: [],
  };
  const signedByKey = new Map<string, SignedHead[]>();
  for (const h of signed?.heads ?? []) {
    const k = keyOf(h.accountId, h.keyId);
    const list = signedByKey.get(k) ?? [];
    list.push(h);
    signedByKey.set(k, list);
  }
  const seen = new Set<string>();
  for await (const { accountId, keyId, links, items } of readKeys(source, await source.keysOnRecord())) {
    seen.add(keyOf(accountId, keyId));
    const report = verifyKeyChain(links, items);
    result.keys += 1;
    result.links += report.links;
    if (report.legacy.length) result.legacy.push({ accountId, keyId, decisionIds: report.legacy });
    for (const decisionId of report.chainedTwice) result.chainedTwice.push({ accountId, keyId, decisionId });
    for (const p of report.problems) result.problems.push({ ...p, accountId, keyId });

    const signedHeads = signedByKey.get(keyOf(accountId, keyId)) ?? [];
    const last = links.reduce((m, l) => Math.max(m, l.seq), 0);
    const maxSigned = signedHeads.reduce((m, h) => Math.max(m, h.seq), 0);
    result.unsignedLinks += links.filter((l) => l.seq > maxSigned).length;
    for (const head of signedHeads) {
      const atSigned = links.find((l) => l.seq === head.seq);
      if (!atSigned) {
        result.problems.push({
          kind: 'behind-digest',
          accountId,
          keyId,
          seq: head.seq,
          detail:
            `a signed digest names seq ${head.seq} as this key's head, but the chain ` +
            (last === 0 ? 'has no links' : `ends at seq ${last}`) +
            ' (links deleted after they were signed)',
        });
      } else if (atSigned.hash !== head.hash) {
        result.problems.push({
          kind: 'digest-mismatch',
          accountId,
          keyId,
          seq: head.seq,
          decisionId: atSigned.decisionId,
          detail: `the link at seq ${head.seq} is not the one a signed digest names (the chain was rewritten after signing)`,
        });
      }
    }
  }
  const reported = new Set<string>();
  for (const head of signed?.heads ?? []) {
    const k = keyOf(head.accountId, head.keyId);
    if (seen.has(k) || reported.has(k)) continue;
    reported.add(k);
    result.problems.push({
      kind: 'chain-missing',
      accountId: head.accountId,
      keyId: head.keyId,
      seq: head.seq,
      detail: `a signed digest names a chain of ${head.seq} link(s) for this key; the table holds nothing about it`,
    });
  }
  return result;
}
