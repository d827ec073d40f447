import { createHash } from 'node:crypto';

/**
 * Bounded sizes for everything the stores write. DynamoDB refuses an item over 400 KB (attribute names and values,
 * UTF-8) and a key attribute over 2048 bytes (partition) or 1024 bytes (sort), and a refused write fails the whole
 * replay or function batch. Values can come from anywhere (a tag, a user agent, a CloudTrail field), so every
 * writer (audit, usage, approvals and keys tables; functions and CLI) passes its item through here first.
 *
 * A string longer than the bound keeps its start and ends with a marker saying how much was cut and the SHA-256 of
 * the whole value, so two different long values never read as one and a reader can check a value it holds:
 * `xxxx…[truncated 499,872 chars, sha256:2f0c9e1d5a7b3c48]`. Bounding is idempotent (a bounded value is left as is)
 * and deterministic (a retried write stores the same bytes).
 */

/** Longest string stored, in UTF-8 bytes: IAM tag values (256 characters) and user names always fit. */
export const STRING_MAX_BYTES = 1024;
/** What a whole item may reach: room below DynamoDB's 400 KB for what a store adds (keys, index, chain fields). */
export const ITEM_BUDGET_BYTES = 300 * 1024;
/** Tighter string bounds tried, in order, when an item with many long values is still over the budget. */
const FALLBACK_STRING_BYTES = [256, 64] as const;

/** An item too large even with every value cut (thousands of attributes): never written, never silently lost. */
export class ItemTooLargeError extends Error {
  constructor(
    readonly label: string,
    readonly bytes: number,
  ) {
    super(
      `${label}: item of ${bytes.toLocaleString('en-US')} bytes is over the ${ITEM_BUDGET_BYTES.toLocaleString('en-US')}-byte ` +
        'budget below DynamoDB’s 400 KB item limit, even with every value cut',
    );
    this.name = 'ItemTooLargeError';
  }
}

function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** `s` cut to at most `maxBytes` UTF-8 bytes, with the truncation marker; `s` itself when it fits. */
export function boundString(s: string, maxBytes = STRING_MAX_BYTES): string {
  if (s.length <= maxBytes / 3 || utf8Bytes(s) <= maxBytes) return s;
  const hash = createHash('sha256').update(s, 'utf8').digest('hex').slice(0, 16);
  const marker = (dropped: number) => `…[truncated ${dropped.toLocaleString('en-US')} chars, sha256:${hash}]`;
  // The marker is sized for the most characters that could be dropped, so the result always fits.
  const room = Math.max(0, maxBytes - utf8Bytes(marker(s.length)));
  // Cutting bytes may split a character: a trailing replacement character is dropped.
  const head = Buffer.from(s, 'utf8')
    .subarray(0, room)
    .toString('utf8')
    .replace(/\uFFFD+$/u, '');
  return `${head}${marker(s.length - head.length)}`;
}

function boundDeep(value: unknown, maxBytes: number): unknown {
  if (typeof value === 'string') return boundString(value, maxBytes);
  if (Array.isArray(value)) return value.map((v) => boundDeep(v, maxBytes));
  if (value instanceof Set) return new Set([...value].map((v) => boundDeep(v, maxBytes)));
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [
        boundString(k, maxBytes),
        boundDeep(v, maxBytes),
      ]),
    );
  }
  return value;
}

/** An upper bound of an item's DynamoDB size: its JSON (quotes and commas count more than DynamoDB does). */
export function itemBytes(item: unknown): number {
  return utf8Bytes(JSON.stringify(item, (_k, v: unknown) => (v instanceof Set ? [...v] : v)) ?? '');
}

/**
 * The item with every string (map keys included) bounded to `stringMaxBytes`, tighter when the item is still over
 * ITEM_BUDGET_BYTES. Top-level attributes named in `keep` (table keys: they identify the item, and are bounded
 * where they are read from their source) are left as they are.
 * @param stringMaxBytes STRING_MAX_BYTES by default; a store of text people write on purpose (an approval's
 *   reason, a review note) keeps more of it.
 * @throws ItemTooLargeError when no bound brings the item under the budget (`label` names it).
 */
export function boundItem<T extends object>(
  item: T,
  label: string,
  keep: readonly string[] = [],
  stringMaxBytes = STRING_MAX_BYTES,
): T {
  let bytes = 0;
  for (const max of [stringMaxBytes, STRING_MAX_BYTES, ...FALLBACK_STRING_BYTES]) {
    const out = Object.fromEntries(
      Object.entries(item as Record<string, unknown>).map(([k, v]) => [
        k,
        keep.includes(k) ? v : boundDeep(v, max),
      ]),
    ) as T;
    bytes = itemBytes(out);
    if (bytes <= ITEM_BUDGET_BYTES) return out;
  }
  throw new ItemTooLargeError(label, bytes);
}
