import { createHash } from 'node:crypto';

/**
 * Key material must never be repeated: anything shaped like a Bedrock API key is replaced by a redacted form
 * (its prefix and last 4 characters) and a stable fingerprint (a SHA-256 of the whole key), which lets people
 * correlate findings without seeing the key.
 *
 * Long-term keys: `ABSK` + base64 (gitleaks' rule: 109..269 base64 characters). Short-term keys:
 * `bedrock-api-key-` + base64 of a presigned URL, which always starts `YmVkcm9jay5hbWF6b25hd3MuY29t`.
 * The bounds here are looser than the gitleaks rule on purpose: a truncated key is still redacted.
 */
const KEY_SHAPES = /ABSK[A-Za-z0-9+/]{40,}={0,2}|bedrock-api-key-[A-Za-z0-9+/]{20,}={0,2}/g;

export function fingerprint(secret: string): string {
  return `sha256:${createHash('sha256').update(secret).digest('hex').slice(0, 16)}`;
}

export function redactedForm(secret: string): string {
  const prefix = secret.startsWith('ABSK') ? 'ABSK' : 'bedrock-api-key-';
  return `${prefix}…${secret.slice(-4)}`;
}

/** Replaces every key-shaped substring with `<redacted form> [<fingerprint>]`. */
export function redactSecrets(text: string): string {
  return text.replace(KEY_SHAPES, (m) => `${redactedForm(m)} [${fingerprint(m)}]`);
}

export function containsKeyMaterial(text: string): boolean {
  KEY_SHAPES.lastIndex = 0;
  const found = KEY_SHAPES.test(text);
  KEY_SHAPES.lastIndex = 0;
  return found;
}
