import { createHash } from 'node:crypto';

/**
 * Tamper evidence for the decision record, after CloudTrail log file integrity validation: every decision is
 * chained to the one recorded before it about the same key by a SHA-256 hash, and the heads of the chains are
 * signed periodically (audit-digest.ts). Pure: the store builds links with these functions and
 * `keyguard audit verify` checks them with the same ones.
 *
 * Why one chain per key (the decision partition `<accountId>#<keyId>`), not one for the whole table:
 * - writers of different keys never contend: each chain is extended with a conditional put on the next sequence
 *   number (DynamoDB has no cross-item lock and the embedded store, dynalite, no transactions), so a single
 *   table-wide chain would serialise every function and every sweep page on one item;
 * - a key's decisions are already read together (one Query on its partition), so verifying a key costs two
 *   Queries and an altered record is named inside a short chain;
 * - the signed digest lists every key's head, so deleting a key's newest decisions (or the whole chain) is still
 *   caught: the chain would end before the signed head.
 */

/** `prevHash` of the first link of a chain. */
export const GENESIS_HASH = '0'.repeat(64);
/** Versioned domain separator: a hash of this scheme can never be confused with any other SHA-256 in the product. */
const CHAIN_SCHEME = 'keyguard-audit-chain/1';

/** One link: the decision recorded at `seq` in its key's chain, and the hash that seals it to its predecessor. */
export interface ChainLink {
  seq: number;
  decisionId: string;
  prevHash: string;
  /** SHA-256 (hex) of the scheme, seq, decision id, prevHash and the canonical stored decision item. */
  hash: string;
  /**
   * Short SHA-256 per top-level attribute of the stored item, to name *what* differs when an item no longer
   * matches its hash. Diagnostic only: the proof is `hash` (a forger who rewrites these also breaks `hash` or
   * the next link's `prevHash`).
   */
  fields: Record<string, string>;
  /** When the link was written (writer's clock). */
  chainedAt: string;
  /**
   * Only on seq 1: the ids of the decisions already in the key's partition when its chain began (recorded before
   * chaining existed). Sealed by `hash`, so this set of uncovered decisions cannot grow later: any other
   * unchained decision was written around the store.
   */
  legacy?: string[];
  /** Instead of `legacy` when it would be too large for an item: its size and the SHA-256 of its sorted ids. */
  legacyDigest?: { count: number; sha256: string };
}

/** Above this many legacy decisions a first link carries their digest instead of their ids (400 KB item limit). */
export const MAX_LEGACY_IDS = 2000;

export function legacyDigestOf(ids: readonly string[]): { count: number; sha256: string } {
  const sorted = [...new Set(ids)].sort();
  return { count: sorted.length, sha256: sha256(sorted.join('\n')) };
}

/** What seq 1's hash seals about the legacy set. */
function legacySeal(link: Pick<ChainLink, 'legacy' | 'legacyDigest'>): unknown {
  return link.legacyDigest ?? link.legacy ?? [];
}

/**
 * Canonical JSON: object keys sorted (by UTF-16 code unit), no whitespace, `undefined` members left out (as the
 * DynamoDB document client stores them). Arrays keep their order. A stored item read back serialises to the
 * same bytes as the item that was written.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value instanceof Set) return canonicalJson([...value].sort());
  if (value instanceof Uint8Array) return JSON.stringify({ $bytes: Buffer.from(value).toString('base64') });
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${value} is not a finite number`);
      return JSON.stringify(value);
    case 'bigint':
      return value.toString();
    case 'object': {
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: cannot serialise a ${typeof value}`);
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * The hash sealing `item` (the decision item exactly as stored, table keys included) at `seq` after `prevHash`,
 * and on seq 1 the legacy set.
 */
export function chainHash(
  seq: number,
  decisionId: string,
  prevHash: string,
  item: Record<string, unknown>,
  legacy?: unknown,
): string {
  const tail = legacy === undefined ? '' : `\n${canonicalJson(legacy)}`;
  return sha256(`${CHAIN_SCHEME}\n${seq}\n${decisionId}\n${prevHash}\n${canonicalJson(item)}${tail}`);
}

/** Per-attribute short hashes of a stored item (see ChainLink.fields). */
export function fieldHashes(item: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(item).sort()) {
    if (item[k] === undefined) continue;
    out[k] = sha256(`${k}\n${canonicalJson(item[k])}`).slice(0, 16);
  }
  return out;
}

/**
 * The link that appends `item` to a chain whose head is `head`. With no head the chain starts here, and
 * `partitionIds` (the decision ids already in the key's partition) less this decision become its legacy set.
 */
export function nextLink(
  head: Pick<ChainLink, 'seq' | 'hash'> | null,
  decisionId: string,
  item: Record<string, unknown>,
  now: Date,
  partitionIds: readonly string[] = [],
): ChainLink {
  const seq = (head?.seq ?? 0) + 1;
  const prevHash = head?.hash ?? GENESIS_HASH;
  const ids = [...new Set(partitionIds)].filter((id) => id !== decisionId).sort();
  const seal: Pick<ChainLink, 'legacy' | 'legacyDigest'> =
    seq !== 1 ? {} : ids.length > MAX_LEGACY_IDS ? { legacyDigest: legacyDigestOf(ids) } : { legacy: ids };
  return {
    seq,
    decisionId,
    prevHash,
    hash: chainHash(seq, decisionId, prevHash, item, seq === 1 ? legacySeal(seal) : undefined),
    fields: fieldHashes(item),
    chainedAt: now.toISOString(),
    ...seal,
  };
}

/** A decision item as stored, with the attributes verification needs. */
export interface StoredDecisionItem {
  /** The decision id (the item's sort key). */
  sk: string;
  decidedAt?: unknown;
  [attr: string]: unknown;
}

export type ChainProblem =
  /** A sequence number is missing: a link (and with it the record of a decision) was deleted. */
  | { kind: 'gap'; seq: number; detail: string }
  /** A link names a decision that is not in the table. */
  | { kind: 'missing'; seq: number; decisionId: string; detail: string }
  /** The decision item no longer matches the hash it was chained with. */
  | { kind: 'altered'; seq: number; decisionId: string; detail: string }
  /** The link itself was edited (its prevHash or hash no longer follow from the chain). */
  | { kind: 'link-altered'; seq: number; decisionId: string; detail: string }
  /** A decision recorded after the chain began that no link covers: written around the store. */
  | { kind: 'unchained'; decisionId: string; detail: string };

export interface KeyChainReport {
  /** Links checked, in order. */
  links: number;
  /** The head as recomputed (null: no chain for this key). */
  head: { seq: number; hash: string } | null;
  /** Decisions recorded before the chain began for this key: present, not covered by any hash. */
  legacy: string[];
  /** Decisions chained more than once (two concurrent deliveries of the same event): no rewrite, noted only. */
  chainedTwice: string[];
  /** Problems in chain order; the first one is "the first altered or missing record". */
  problems: ChainProblem[];
}

function describeFieldDiff(expected: Record<string, string>, actual: Record<string, string>): string {
  const changed: string[] = [];
  const removed: string[] = [];
  const added: string[] = [];
  for (const k of Object.keys(expected)) {
    if (!(k in actual)) removed.push(k);
    else if (expected[k] !== actual[k]) changed.push(k);
  }
  for (const k of Object.keys(actual)) if (!(k in expected)) added.push(k);
  const parts = [
    changed.length ? `changed: ${changed.join(', ')}` : '',
    removed.length ? `removed: ${removed.join(', ')}` : '',
    added.length ? `added: ${added.join(', ')}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : 'the link’s field hashes match but its hash does not';
}

/**
 * Verifies one key's chain against the decision items of its partition. Recomputes every hash from the items
 * (never trusting a stored hash but the signed head), checks the sequence has no gaps, that each link's
 * prevHash is its predecessor's recomputed hash, and that every decision recorded after the chain began is
 * chained. Decisions older than the first link are legacy (written before chaining existed).
 */
export function verifyKeyChain(
  links: readonly ChainLink[],
  items: readonly StoredDecisionItem[],
): KeyChainReport {
  const byId = new Map(items.map((i) => [i.sk, i]));
  const sorted = [...links].sort((a, b) => a.seq - b.seq);
  const problems: ChainProblem[] = [];
  const chained = new Set<string>();
  const chainedTwice: string[] = [];
  let prev = GENESIS_HASH;
  let expectedSeq = 1;
  let head: KeyChainReport['head'] = null;
  for (const link of sorted) {
    if (link.seq !== expectedSeq) {
      const missing =
        link.seq - expectedSeq === 1 ? `seq ${expectedSeq}` : `seq ${expectedSeq}–${link.seq - 1}`;
      problems.push({
        kind: 'gap',
        seq: expectedSeq,
        detail: `${missing} missing from the chain (deleted links; the next link present is seq ${link.seq}, decision ${link.decisionId})`,
      });
      // Across a gap the predecessor is unknown: continue from what this link says it follows.
      prev = link.prevHash;
    } else if (link.prevHash !== prev) {
      problems.push({
        kind: 'link-altered',
        seq: link.seq,
        decisionId: link.decisionId,
        detail:
          link.seq === 1
            ? 'the first link does not start from the genesis hash'
            : `its prevHash is not the hash of seq ${link.seq - 1} (that link or its decision was rewritten)`,
      });
    }
    expectedSeq = link.seq + 1;
    if (chained.has(link.decisionId)) chainedTwice.push(link.decisionId);
    chained.add(link.decisionId);
    const item = byId.get(link.decisionId);
    if (!item) {
      problems.push({
        kind: 'missing',
        seq: link.seq,
        decisionId: link.decisionId,
        detail: 'the decision this link seals is not in the table (deleted or moved)',
      });
    } else if (
      chainHash(link.seq, link.decisionId, prev, item, link.seq === 1 ? legacySeal(link) : undefined) !==
      link.hash
    ) {
      const actual = fieldHashes(item);
      problems.push(
        canonicalJson(actual) === canonicalJson(link.fields)
          ? {
              kind: 'link-altered',
              seq: link.seq,
              decisionId: link.decisionId,
              detail: 'its hash does not follow from the decision and its predecessor',
            }
          : {
              kind: 'altered',
              seq: link.seq,
              decisionId: link.decisionId,
              detail: `the stored decision differs from what was chained (${describeFieldDiff(link.fields, actual)})`,
            },
      );
    }
    // Later links are checked against the hash as recorded, so one edit is reported once.
    prev = link.hash;
    head = { seq: link.seq, hash: link.hash };
  }
  // Legacy: in the partition when this key's chain began (seq 1 seals that set). Without seq 1 (no chain, or
  // its start deleted: a gap is reported) every unchained decision is listed as legacy, not covered. Any other
  // unchained decision was written around the store.
  const first = sorted[0];
  const unchained = items.filter((i) => !chained.has(i.sk)).map((i) => i.sk);
  if (first?.seq === 1 && first.legacyDigest) {
    const now = legacyDigestOf(unchained);
    if (now.sha256 !== first.legacyDigest.sha256) {
      problems.push({
        kind: 'unchained',
        decisionId: '(one of the unchained)',
        detail: `the ${now.count} decision(s) outside the chain are not the ${first.legacyDigest.count} sealed as legacy when it began`,
      });
    }
    return { links: sorted.length, head, legacy: unchained.sort(), chainedTwice, problems };
  }
  const sealed = first?.seq === 1 ? new Set(first.legacy ?? []) : null;
  const legacy: string[] = [];
  for (const item of items) {
    if (chained.has(item.sk)) continue;
    if (sealed === null || sealed.has(item.sk)) legacy.push(item.sk);
    else {
      problems.push({
        kind: 'unchained',
        decisionId: item.sk,
        detail:
          'not in the chain, nor among the decisions recorded before it began: written around the audit store',
      });
    }
  }
  legacy.sort();
  return { links: sorted.length, head, legacy, chainedTwice, problems };
}
