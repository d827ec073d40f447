import { handBuiltLongTermKey } from './bedrock-tokens';
import { fakeLongTermKey } from './secrets';

/**
 * A console-shaped fake long-term key whose base64 holds `+` and `/` (base64 of ASCII has them only for bytes
 * such as `~` and `?`), so that every escape changes how it is written.
 */
export function escapeRichLongTermKey(seed: string): string {
  const base = fakeLongTermKey(seed).slice(-40);
  for (let i = 0; i < 300; i += 1) {
    const secret = `~?~?~?${base}${'K7pQ'.repeat(4)}`.slice(0, 60);
    const key = handBuiltLongTermKey(`BedrockAPIKey-${String(i).padStart(4, '0')}`, '111122223333', secret);
    if (key.includes('+') && key.includes('/')) return key;
  }
  throw new Error('no escape-rich key');
}

/** How a key is written in each context `keyguard scan` reads (domain/leaks.ts). */
export const KEY_ENCODINGS: Array<[string, (k: string) => string]> = [
  ['plain', (k) => k],
  ['URL-encoded (%2B, %2F, %3D)', (k) => encodeURIComponent(k)],
  [
    'URL-encoded in lower case',
    (k) => encodeURIComponent(k).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
  ],
  ['JSON-escaped (\\u002B, \\u002F)', (k) => k.replace(/\+/g, '\\u002B').replace(/\//g, '\\u002F')],
  ['JSON-escaped slashes (\\/)', (k) => k.replace(/\//g, '\\/')],
  [
    'nested JSON escapes (\\\\\\/, \\\\u002B)',
    (k) => k.replace(/\//g, '\\\\\\/').replace(/\+/g, '\\\\u002B'),
  ],
  ['split by escaped line breaks', (k) => `${k.slice(0, 50)}\\n${k.slice(50, 90)}\\r\\n${k.slice(90)}`],
];
