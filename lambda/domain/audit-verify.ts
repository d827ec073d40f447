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

/** The heads a verified (signature checked) digest chain vouches for, latest per key. */
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
  const signedByKey = new Map((signed?.heads ?? []).map((h) => [keyOf(h.accountId, h.keyId), h]));
  const seen = new Set<string>();
  for (const { accountId, keyId } of await source.keysOnRecord()) {
    seen.add(keyOf(accountId, keyId));
    const links = await source.chainLinks(accountId, keyId);
    const items = await source.decisionItems(accountId, keyId);
    const report = verifyKeyChain(links, items);
    result.keys += 1;
    result.links += report.links;
    if (report.legacy.length) result.legacy.push({ accountId, keyId, decisionIds: report.legacy });
    for (const decisionId of report.chainedTwice) result.chainedTwice.push({ accountId, keyId, decisionId });
    for (const p of report.problems) result.problems.push({ ...p, accountId, keyId });

    const head = signedByKey.get(keyOf(accountId, keyId));
    if (!head) {
      result.unsignedLinks += report.links;
      continue;
    }
    const atSigned = links.find((l) => l.seq === head.seq);
    const last = links.reduce((m, l) => Math.max(m, l.seq), 0);
    result.unsignedLinks += links.filter((l) => l.seq > head.seq).length;
    if (!atSigned) {
      result.problems.push({
        kind: 'behind-digest',
        accountId,
        keyId,
        seq: head.seq,
        detail:
          `the digest of ${signed?.time} signed seq ${head.seq} as this key's head, but the chain ` +
          (last === 0 ? 'has no links' : `ends at seq ${last}`) +
          ' (decisions deleted after they were signed)',
      });
    } else if (atSigned.hash !== head.hash) {
      result.problems.push({
        kind: 'digest-mismatch',
        accountId,
        keyId,
        seq: head.seq,
        decisionId: atSigned.decisionId,
        detail: `the link at seq ${head.seq} is not the one the digest of ${signed?.time} signed (chain rewritten after signing)`,
      });
    }
  }
  for (const head of signed?.heads ?? []) {
    if (seen.has(keyOf(head.accountId, head.keyId))) continue;
    result.problems.push({
      kind: 'chain-missing',
      accountId: head.accountId,
      keyId: head.keyId,
      seq: head.seq,
      detail: `the digest of ${signed?.time} signed a chain of ${head.seq} link(s) for this key; the table holds nothing about it`,
    });
  }
  return result;
}
