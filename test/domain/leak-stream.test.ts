import { LeakStreamScanner, type StreamFinding } from '../../lambda/domain/leak-stream';
import { findLeaks } from '../../lambda/domain/leaks';
import { handBuiltShortTermKey } from '../support/bedrock-tokens';
import { fakeLongTermKey, fakeShortTermKey } from '../support/secrets';

const NOW = new Date('2026-11-20T10:00:00Z');

function streamed(text: string, chunk: number, overlap: number): StreamFinding[] {
  const scanner = new LeakStreamScanner({ now: NOW, overlap });
  const out: StreamFinding[] = [];
  for (let i = 0; i < text.length; i += chunk) out.push(...scanner.push(text.slice(i, i + chunk)));
  out.push(...scanner.end());
  return out;
}

/** Text with keys at irregular places, across lines, escaped, and with multi-unit characters before them. */
function corpus(): string {
  const parts: string[] = [];
  for (let i = 0; i < 60; i += 1) {
    const key =
      i % 3 === 0
        ? fakeLongTermKey(`s${i}`)
        : i % 3 === 1
          ? fakeShortTermKey(`s${i}`)
          : handBuiltShortTermKey();
    const filler = 'é😀 log line '.repeat(i % 7) + 'x'.repeat((i * 37) % 101);
    parts.push(
      `${filler}${i % 2 ? '\n' : ' '}${i % 4 === 0 ? key.replace(/\//g, '\\/') : key}${'\n'.repeat(i % 3)}`,
    );
  }
  return parts.join('');
}

describe('LeakStreamScanner', () => {
  it.each([1, 7, 64, 997])(
    'finds exactly what findLeaks finds on the whole text, in chunks of %i',
    (chunk) => {
      // Prepare
      const text = corpus();
      const whole = findLeaks(text, { now: NOW });

      // Act
      const found = streamed(text, chunk, 1200);

      // Assess
      expect(whole).toHaveLength(60);
      expect(found.map(({ allowed: _a, ...f }) => f)).toEqual(whole);
    },
  );

  it('reports a key straddling a chunk boundary once, with its line and column', () => {
    // Prepare
    const key = fakeLongTermKey('straddle');
    const before = `${'a'.repeat(50)}\n${'b'.repeat(2990)}`;
    const text = `${before}${key}\nend\n`;
    const scanner = new LeakStreamScanner({ now: NOW, overlap: 500 });

    // Act: the boundary falls in the middle of the key
    const first = scanner.push(text.slice(0, before.length + 60));
    const second = scanner.push(text.slice(before.length + 60));
    const last = scanner.end();

    // Assess
    expect([...first, ...second, ...last]).toEqual([
      expect.objectContaining({ kind: 'LONG_TERM', line: 2, column: 2991, allowed: false }),
    ]);
  });

  it('honours keyguard:allow on the key line, before or after the key, even across chunks', () => {
    // Prepare
    const keys = [fakeLongTermKey('allow-1'), fakeLongTermKey('allow-2'), fakeLongTermKey('allow-3')];
    const text =
      `# keyguard:allow ${'p'.repeat(700)} ${keys[0]}\n` +
      `${keys[1]} // keyguard:allow\n` +
      `${keys[2]} // reported\n`;

    // Act
    const found = streamed(text, 5, 400);

    // Assess
    expect(found.map((f) => [f.line, f.allowed])).toEqual([
      [1, true],
      [2, true],
      [3, false],
    ]);
  });
});
