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
