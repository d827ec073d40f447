import { findLeaks } from '../../lambda/domain/leaks';
import { containsKeyMaterial, fingerprint, redactedForm, redactSecrets } from '../../lambda/shared/redact';
import { escapeRichLongTermKey, KEY_ENCODINGS } from '../support/key-encodings';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';

/**
 * Redaction uses the same detection as `keyguard scan` (issue 10, item 3): every context scan recognises a key
 * in is redacted, with the fingerprint scan reports, and key-shaped text that is no valid key (truncated) still is.
 */

const NOW = new Date('2026-11-20T09:41:02Z');

const longKey = escapeRichLongTermKey('redact');
const shortKey = fakeShortTermKey('redact');
const ENCODINGS = KEY_ENCODINGS;

describe('redactSecrets', () => {
  it.each(ENCODINGS)(
    'redacts a long-term key written %s, with the fingerprint scan reports',
    (_name, write) => {
      // Prepare
      const written = write(longKey);
      const text = `{"owner":"${written}","team":"ml"}`;
      const scanned = findLeaks(text, { now: NOW });

      // Act
      const redacted = redactSecrets(text);

      // Assess
      expect(scanned.map((f) => f.fingerprint)).toEqual([fingerprint(longKey)]);
      expect(redacted).toBe(`{"owner":"${redactedForm(longKey)} [${fingerprint(longKey)}]","team":"ml"}`);
      expect(leakedFragments(redacted, [longKey, written])).toEqual([]);
      expect(containsKeyMaterial(text)).toBe(true);
      expect(containsKeyMaterial(redacted)).toBe(false);
    },
  );

  it.each(ENCODINGS)('redacts a short-term key written %s', (_name, write) => {
    // Prepare
    const written = write(shortKey);

    // Act
    const redacted = redactSecrets(`token=${written}&next=1`);

    // Assess
    expect(redacted).toBe(`token=${redactedForm(shortKey)} [${fingerprint(shortKey)}]&next=1`);
    expect(leakedFragments(redacted, [shortKey, written])).toEqual([]);
  });

  it.each(ENCODINGS)(
    'redacts a truncated long-term key written %s (key-shaped, though no valid key)',
    (_n, write) => {
      // Prepare
      // Cut mid-quantum: a key cut at a quantum boundary would be a valid (shorter) key.
      const truncated = longKey.slice(0, 101);
      const written = write(truncated);

      // Act
      const redacted = redactSecrets(`note: ${written} end`);

      // Assess
      expect(findLeaks(written, { now: NOW })).toEqual([]);
      expect(redacted).toMatch(/^note: ABSK….{4} \[sha256:[0-9a-f]{16}\] end$/);
      expect(leakedFragments(redacted, [truncated, written])).toEqual([]);
    },
  );

  it('keeps its own fingerprint for each key when a key-shaped run leads into a key', () => {
    // Prepare
    const stray = fakeLongTermKey('stray').slice(0, 60);
    const text = `${stray}${longKey} and ${encodeURIComponent(shortKey)}`;

    // Act
    const redacted = redactSecrets(text);

    // Assess
    expect(redacted).toBe(
      `${redactSecrets(stray)}${redactedForm(longKey)} [${fingerprint(longKey)}] and ` +
        `${redactedForm(shortKey)} [${fingerprint(shortKey)}]`,
    );
  });

  it('leaves text without key material as it is, prefixes and short base64 runs included', () => {
    // Prepare
    const text = 'keys start with ABSK or bedrock-api-key-; ABSKQUJD is too short; %2B \\u002B \\/';

    // Act / Assess
    expect(redactSecrets(text)).toBe(text);
    expect(containsKeyMaterial(text)).toBe(false);
  });

  it('redacts a run of ABSK repeated as one key-shaped stretch, in linear time (no hang)', () => {
    // Prepare
    const text = `x ${'ABSK'.repeat(256 * 1024)} y`;

    // Act
    const redacted = redactSecrets(text);

    // Assess
    expect(redacted).toBe(`x ${redactedForm(text.slice(2, -2))} [${fingerprint(text.slice(2, -2))}] y`);
  });
});
