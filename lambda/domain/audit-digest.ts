import { createHash, verify as verifySignature } from 'node:crypto';
import { canonicalJson } from './audit-chain';
import type { SignedHead, SignedHeads } from './audit-verify';

/**
 * Signed digests of the chain heads, as CloudTrail's digest files: periodically the heads of the chains that
 * grew since the previous digest are listed in a document that names the previous digest's hash, and the
 * document is signed with a KMS asymmetric key (RSASSA_PKCS1_V1_5_SHA_256 over SHA-256 of its canonical JSON).
 * Rewriting a signed link afterwards contradicts the digest; deleting a key's newest links leaves its chain
 * shorter than the head it signed; dropping a digest breaks the chain of digests. Pure: signing and storing are
 * adapters (lambda/adapters/audit-archive.ts).
 */

export const DIGEST_VERSION = 'keyguard-audit-digest/1';
export const SIGNING_ALGORITHM = 'RSASSA_PKCS1_V1_5_SHA_256';

export interface DigestDocument {
  version: typeof DIGEST_VERSION;
  /** When the digest was made. */
  time: string;
  /** Links chained in [windowStart, windowEnd) are covered (windowStart null: everything before windowEnd). */
  windowStart: string | null;
  windowEnd: string;
  /** Hash of the previous digest document (null: the first digest). */
  previousDigestHash: string | null;
  /** The newest link of each key chained in the window, sorted by account and key. */
  heads: SignedHead[];
}

export interface SignedDigest {
  digest: DigestDocument;
  /** The signing key (KMS key ARN). */
  signingKeyId: string;
  algorithm: typeof SIGNING_ALGORITHM;
  /** Base64 signature over SHA-256 of canonicalJson(digest). */
  signature: string;
}

/** The bytes that are hashed and signed. */
export function digestBytes(doc: DigestDocument): Buffer {
  return Buffer.from(canonicalJson(doc), 'utf8');
}

/** SHA-256 (hex) of a digest document: what the next digest names as `previousDigestHash`. */
export function digestHash(doc: DigestDocument): string {
  return createHash('sha256').update(digestBytes(doc)).digest('hex');
}

/** The newest link per key among `links` (highest seq), sorted by account and key. */
export function newestHeads(links: readonly SignedHead[]): SignedHead[] {
  const byKey = new Map<string, SignedHead>();
  for (const l of links) {
    const k = `${l.accountId}#${l.keyId}`;
    const seen = byKey.get(k);
    if (!seen || l.seq > seen.seq)
      byKey.set(k, { accountId: l.accountId, keyId: l.keyId, seq: l.seq, hash: l.hash });
  }
  return [...byKey.values()].sort((a, b) =>
    a.accountId !== b.accountId
      ? a.accountId < b.accountId
        ? -1
        : 1
      : a.keyId < b.keyId
        ? -1
        : a.keyId > b.keyId
          ? 1
          : 0,
  );
}

export function buildDigest(
  heads: readonly SignedHead[],
  window: { start: string | null; end: string },
  previousDigestHash: string | null,
  now: Date,
): DigestDocument {
  return {
    version: DIGEST_VERSION,
    time: now.toISOString(),
    windowStart: window.start,
    windowEnd: window.end,
    previousDigestHash,
    heads: newestHeads(heads),
  };
}

/** A digest problem: a bad signature, or a digest missing from the chain of digests. */
export class DigestChainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DigestChainError';
  }
}

export interface DigestCheck {
  /** Every head of every validly signed digest (a key may appear in many). */
  signed: SignedHeads | null;
  /** Digest problems: each is tamper evidence. */
  problems: { digestTime: string; detail: string }[];
  /** Validly signed digests no later digest chains to (a run that stopped before recording it): noted only. */
  orphans: string[];
}

/**
 * Checks every digest's signature with the public keys (DER SubjectPublicKeyInfo, as kms:GetPublicKey returns
 * them, by signing key id) and walks the chain of digests back from the newest through `previousDigestHash`:
 * a hash that names no stored digest means one was removed or altered. Returns the heads they vouch for.
 */
export function checkDigests(
  digests: readonly SignedDigest[],
  publicKeys: ReadonlyMap<string, Uint8Array>,
): DigestCheck {
  const sorted = [...digests].sort((a, b) =>
    a.digest.time < b.digest.time ? -1 : a.digest.time > b.digest.time ? 1 : 0,
  );
  const problems: DigestCheck['problems'] = [];
  const heads: SignedHead[] = [];
  const byHash = new Map<string, SignedDigest>();
  for (const d of sorted) {
    byHash.set(digestHash(d.digest), d);
    const key = publicKeys.get(d.signingKeyId);
    const valid =
      key !== undefined &&
      d.algorithm === SIGNING_ALGORITHM &&
      verifySignature(
        'sha256',
        digestBytes(d.digest),
        { key: Buffer.from(key), format: 'der', type: 'spki' },
        Buffer.from(d.signature, 'base64'),
      );
    if (!valid) {
      problems.push({
        digestTime: d.digest.time,
        detail:
          key === undefined
            ? `signed with ${d.signingKeyId}, not the audit signing key`
            : 'its signature does not match its content (the digest was altered or forged)',
      });
    } else {
      for (const h of d.digest.heads) heads.push(h);
    }
  }
  const onChain = new Set<SignedDigest>();
  let at = sorted[sorted.length - 1];
  while (at) {
    onChain.add(at);
    const prev = at.digest.previousDigestHash;
    if (prev === null) break;
    const found = byHash.get(prev);
    if (!found || onChain.has(found)) {
      problems.push({
        digestTime: at.digest.time,
        detail: `its previous digest (hash ${prev.slice(0, 16)}…) is not in the archive (removed or altered)`,
      });
      break;
    }
    at = found;
  }
  const orphans = sorted.filter((d) => !onChain.has(d)).map((d) => d.digest.time);
  const last = sorted[sorted.length - 1];
  return {
    signed: last ? { time: last.digest.time, digests: sorted.length, heads } : null,
    problems,
    orphans,
  };
}
