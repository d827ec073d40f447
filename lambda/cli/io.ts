import { terminalSafe, visible, visibleLines } from '../shared/visible-text';

/**
 * What a command needs from its process, injected so that commands run the same from `bin/keyguard.js` and
 * in-process from tests.
 */
export interface TextSink {
  write(chunk: string): unknown;
  /** True for a terminal (process streams set it): interactive extras such as progress go only there. */
  isTTY?: boolean;
  /**
   * Terminal control sequences of the program's own (a progress bar's `\r\x1b[K`), written past the guard of
   * `guardedIO`. Never for text that holds input. Absent on a sink without a guard: use `writeControl()`.
   */
  writeControl?(chunk: string): unknown;
}

export interface CliIO {
  stdout: TextSink;
  stderr: TextSink;
  /** Relative paths (inputs, --config, --store) are resolved against this directory. */
  cwd: string;
  /**
   * Present only when stdout is a terminal (see `terminalOf`): tables fit its width and the action column is
   * coloured. Absent (piped, redirected, in tests by default): full-width tables, no colour, so scripts and
   * diffs see the same bytes as before.
   */
  terminal?: TerminalFacts;
}

/** What a human-readable printer may assume about the terminal stdout is. */
export interface TerminalFacts {
  /** Visible columns of the terminal; tables are truncated to fit. */
  columns: number;
  /** Colour the action/severity column (SGR sequences written past the guard, see `writeStyled`). */
  color: boolean;
}

/**
 * The facts of a real stream: none when it is not a TTY. Colour follows https://no-color.org (`NO_COLOR` set to
 * any non-empty value turns it off) and `FORCE_COLOR=0` turns it off too; `FORCE_COLOR` never turns colour on
 * for a pipe (a pipe keeps today's plain, full-width output). `TERM=dumb` gets no colour.
 */
export function terminalOf(
  stream: { isTTY?: boolean; columns?: number },
  env: Readonly<Record<string, string | undefined>>,
): TerminalFacts | undefined {
  if (!stream.isTTY) return undefined;
  const columns = stream.columns && stream.columns > 0 ? stream.columns : 80;
  const color = !env.NO_COLOR && env.FORCE_COLOR !== '0' && env.TERM !== 'dumb';
  return { columns, color };
}

/** The SGR sequences the table printer uses: the only raw escapes ever let past the guard. */
const ESC = '\u001b';
const OWN_SGR = new RegExp(`(${ESC}\\[(?:0|1;31|31|32|33|36)m)`);

/**
 * Writes text that may hold the printer's own colour sequences (`renderTable` with colour on): those go past the
 * guard, every other part through it. Values in the text already went through `visible()`, so any raw ESC left
 * in it is one of ours; anything else the guard still escapes.
 */
export function writeStyled(sink: TextSink, text: string): void {
  if (!text.includes(ESC)) {
    sink.write(text);
    return;
  }
  for (const part of text.split(OWN_SGR)) {
    if (part === '') continue;
    if (OWN_SGR.test(part) && part.length <= 7) writeControl(sink, part);
    else sink.write(part);
  }
}

/** Exit codes shared by every command. */
export const EXIT_OK = 0;
/** Unexpected failure (a bug or an environment problem), with the error on stderr. */
export const EXIT_FAILURE = 1;
/** Bad usage, bad config, or input that could not be read in full: the output may be incomplete. */
export const EXIT_INPUT = 2;

/**
 * One problem line on stderr, in the `keyguard: <where>: <reason>` form. Both parts are shown through
 * `visible()`: `where` is often a path from a directory walk and `reason` often quotes it (a Node error
 * message names the file), so a newline or an escape sequence in either stays on the line, as text.
 */
export function problem(io: CliIO, where: string, reason: string): void {
  io.stderr.write(`keyguard: ${visible(where)}: ${visible(reason)}\n`);
}

/**
 * An error on stderr as `keyguard: <message>`. The message's own line breaks are kept (a config error lists one
 * problem per line); any other control or bidi character in it is shown through `visible()`.
 */
export function failure(io: CliIO, message: string): void {
  io.stderr.write(`keyguard: ${visibleLines(message)}\n`);
}

/** Writes a control sequence of the program's own to a sink, past its guard if it has one. */
export function writeControl(sink: TextSink, chunk: string): void {
  if (sink.writeControl) sink.writeControl(chunk);
  else sink.write(chunk);
}

function guardSink(sink: TextSink): TextSink {
  return {
    write: (chunk: string) => sink.write(terminalSafe(chunk)),
    ...(sink.isTTY !== undefined ? { isTTY: sink.isTTY } : {}),
    writeControl: (chunk: string) => sink.write(chunk),
  };
}

/**
 * The process's streams with `terminalSafe()` on every write: the CLI's last line of defence against a
 * control or bidi character that a printer forgot to pass through `visible()`. JSON stays the same JSON
 * (see `terminalSafe`). `bin/keyguard.ts` applies it once, to every command.
 */
export function guardedIO(io: CliIO): CliIO {
  return { ...io, stdout: guardSink(io.stdout), stderr: guardSink(io.stderr) };
}
