/**
 * Text shown to a person (the CLI's output on a terminal, the body of an owner notice read in a mail client) obeys
 * what it is sent. Text the CLI prints for a person is read on a terminal, and a terminal obeys what it is sent: a file name,
 * user name or tag value holding a newline can forge a finding line, ESC / CSI / OSC sequences (and their
 * 8-bit C1 forms) can clear the screen, retitle the window or hide text, and bidirectional overrides make one
 * name read as another. Every value that came from input is therefore shown through `visible()` before it is
 * printed, and every chunk the CLI writes passes `terminalSafe()` as a last guard (see `guardSink`).
 *
 * What is made visible: C0 and C1 control characters and DEL (\p{Cc}); format characters (\p{Cf}: the bidi
 * embeddings, overrides, isolates and marks U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C, and the
 * invisible ones such as U+200B, U+2060, U+FEFF, U+E0000 tags), except ZWNJ and ZWJ (U+200C, U+200D), which
 * scripts and emoji need; the line and paragraph separators U+2028 and U+2029; lone surrogates.
 *
 * The visible form is for reading, not for decoding: a literal backslash is left as it is, so a value that
 * already holds the text `\n` looks like one holding a newline. The exact value is in the JSON output.
 */

/** Characters never printed raw in human-readable output. */
const HAS_UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
/** The format characters left raw: zero-width non-joiner and joiner (needed by scripts and emoji sequences). */
const JOINERS = new Set(['\u200c', '\u200d']);

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function hex(code: number, width: number): string {
  return code.toString(16).padStart(width, '0');
}

/** `\n`, `\r`, `\t`; `\x1b` up to U+00FF; `\u202e` in the BMP; `\u{e0041}` beyond. */
function visibleEscape(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const code = ch.codePointAt(0) ?? 0;
  if (code <= 0xff) return `\\x${hex(code, 2)}`;
  if (code <= 0xffff) return `\\u${hex(code, 4)}`;
  return `\\u{${code.toString(16)}}`;
}

/**
 * One value (a path, user name, tag value, message) as it is shown to a person: control, bidi and invisible
 * format characters, newlines included, are replaced by escapes, so the value stays on its line and reads
 * as what it is.
 */
export function visible(value: string): string {
  if (!HAS_UNSAFE.test(value)) return value;
  return value.replace(UNSAFE, (ch) => (JOINERS.has(ch) ? ch : visibleEscape(ch)));
}

/**
 * `visible()` with the two kinds of text rendered apart: `plain` for the runs of ordinary characters, `escaped`
 * for the escape of each unsafe one (e.g. HTML-escaped text, and a highlighted marker for `\u202e`).
 */
export function mapVisible(
  value: string,
  plain: (text: string) => string,
  escaped: (sequence: string) => string,
): string {
  if (!HAS_UNSAFE.test(value)) return plain(value);
  let out = '';
  let from = 0;
  for (const m of value.matchAll(UNSAFE)) {
    const ch = m[0];
    if (JOINERS.has(ch)) continue;
    out += plain(value.slice(from, m.index)) + escaped(visibleEscape(ch));
    from = m.index + ch.length;
  }
  return out + plain(value.slice(from));
}

/**
 * A message whose line breaks are meant (e.g. a config error listing one problem per line): each line
 * through `visible()`, the line breaks kept.
 */
export function visibleLines(text: string): string {
  return text.split('\n').map(visible).join('\n');
}

/**
 * The last guard on every chunk the CLI writes (text, JSON, SARIF, CSV): every unsafe character except a line
 * feed, a tab and a carriage return before a line feed (CSV records end in CRLF) becomes a JSON-style `\uXXXX`
 * escape. In JSON and SARIF such characters only occur inside strings (the structure is ASCII), where the
 * escape is the same JSON value: machine output keeps its meaning byte for byte after parsing. Text output
 * should never reach this guard with anything to change (values go through `visible()` first): it is there
 * for a value a printer forgot.
 */
export function terminalSafe(chunk: string): string {
  if (!HAS_UNSAFE.test(chunk)) return chunk;
  return chunk.replace(UNSAFE, (ch, offset: number) => {
    if (ch === '\n' || ch === '\t' || JOINERS.has(ch)) return ch;
    if (ch === '\r' && chunk[offset + 1] === '\n') return ch;
    // Astral format characters (tags) come out as their surrogate pair, as JSON escapes them.
    let out = '';
    for (let i = 0; i < ch.length; i++) out += `\\u${hex(ch.charCodeAt(i), 4)}`;
    return out;
  });
}
