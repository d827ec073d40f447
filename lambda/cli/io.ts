/**
 * What a command needs from its process, injected so that commands run the same from `bin/keyguard.js` and
 * in-process from tests.
 */
export interface TextSink {
  write(chunk: string): unknown;
  /** True for a terminal (process streams set it): interactive extras such as progress go only there. */
  isTTY?: boolean;
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

/** One problem line on stderr, in the `keyguard: <where>: <reason>` form. */
export function problem(io: CliIO, where: string, reason: string): void {
  io.stderr.write(`keyguard: ${where}: ${reason}\n`);
}
