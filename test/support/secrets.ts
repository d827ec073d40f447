import { createHash } from 'node:crypto';

/**
 * Secret-shaped test values built to the documented formats (never real keys): deterministic, so a failing
 * assertion is reproducible.
 */

function pseudoRandom(seed: string, length: number, alphabet: string): string {
  let out = '';
  let block = seed;
  while (out.length < length) {
    block = createHash('sha256').update(block).digest('hex');
    for (let i = 0; i < block.length && out.length < length; i += 2) {
      out += alphabet[Number.parseInt(block.slice(i, i + 2), 16) % alphabet.length];
    }
  }
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** `ABSK` + base64("BedrockAPIKey-xxxx-at-<account>:<60-char secret>"): 132 characters, like console keys. */
export function fakeLongTermKey(seed: string, account = '111122223333'): string {
  const suffix = pseudoRandom(`${seed}-user`, 4, 'abcdefghijklmnopqrstuvwxyz0123456789');
  const secret = pseudoRandom(`${seed}-secret`, 60, B64);
  return `ABSK${Buffer.from(`BedrockAPIKey-${suffix}-at-${account}:${secret}`).toString('base64')}`;
}

/** `bedrock-api-key-` + base64 of a SigV4-presigned CallWithBearerToken URL with static credentials. */
export function fakeShortTermKey(seed: string): string {
  const akid = `AKIA${pseudoRandom(`${seed}-akid`, 16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`;
  const signature = pseudoRandom(`${seed}-sig`, 64, '0123456789abcdef');
  const url =
    'bedrock.amazonaws.com/?Action=CallWithBearerToken&X-Amz-Algorithm=AWS4-HMAC-SHA256' +
    `&X-Amz-Credential=${akid}%2F20261120%2Fus-east-1%2Fbedrock%2Faws4_request&X-Amz-Date=20261120T093102Z` +
    `&X-Amz-Expires=43200&X-Amz-SignedHeaders=host&X-Amz-Signature=${signature}&Version=1`;
  return `bedrock-api-key-${Buffer.from(url).toString('base64')}`;
}

/** Distinctive pieces of a secret: any of them appearing in output means the secret leaked. */
export function secretFragments(secret: string): string[] {
  return [secret, secret.slice(16, 48), secret.slice(-24), secret.slice(40, 80)];
}

/** Returns the fragments of `secrets` found in `text` (empty when nothing leaked). */
export function leakedFragments(text: string, secrets: readonly string[]): string[] {
  return secrets.flatMap(secretFragments).filter((f) => text.includes(f));
}
