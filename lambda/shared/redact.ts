import { findKeyMaterial, fingerprint, redactedForm } from '../domain/leaks';

/**
 * Key material must never be repeated: anything that holds a Bedrock API key is replaced by a redacted form (its
 * prefix and last 4 characters) and a stable fingerprint (a SHA-256 of the whole, unescaped key), which lets
 * people correlate findings without seeing the key.
 *
 * What counts as key material is what `keyguard scan` finds (domain/leaks.ts, findKeyMaterial): a key in every
 * context scan reads (plain, URL-encoded `%2B`, JSON-escaped `\u002B` or `\/`, nested JSON escapes, wrapped by
 * escaped line breaks), and besides anything key-shaped that is no valid key (a truncated key is still redacted):
 * `ABSK` + 40 or more base64 characters, `bedrock-api-key-` + 20 or more, read through the same escapes.
 * A key's fingerprint is the one scan reports, whatever its encoding.
 */

export { fingerprint, redactedForm };

/** Replaces every stretch holding key material with `<redacted form> [<fingerprint>]`. */
export function redactSecrets(text: string): string {
  const spans = findKeyMaterial(text);
  if (spans.length === 0) return text;
  let out = '';
  let pos = 0;
  for (const s of spans) {
    out += `${text.slice(pos, s.index)}${s.redacted} [${s.fingerprint}]`;
    pos = s.end;
  }
  return out + text.slice(pos);
}

export function containsKeyMaterial(text: string): boolean {
  return findKeyMaterial(text).length > 0;
}
