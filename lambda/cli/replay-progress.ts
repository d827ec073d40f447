import { Writable } from 'node:stream';
import { SingleBar } from 'cli-progress';
import { type TextSink, writeControl } from './io';

/**
 * The progress bar of `keyguard replay` over a large archive: bytes read of the total (sizes on disk, known
 * before reading), throughput, ETA and files done. Only on a terminal: a log file or a pipe gets no control
 * characters, and `--quiet` turns it off.
 */

export interface ReplayProgress {
  fileDone(bytes: number): void;
  stop(): void;
}

const MIB = 1024 * 1024;

function mib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

/** `75` → `1m15s`. */
function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Nothing shown: not a terminal, or --quiet. */
const SILENT: ReplayProgress = { fileDone: () => undefined, stop: () => undefined };

/**
 * cli-progress writes to a Node stream: this one forwards to the CLI's sink and tells it is a terminal. The
 * bar is made of numbers and the program's own control sequences only, so it goes past the terminal guard.
 */
function terminalStream(sink: TextSink): NodeJS.WritableStream {
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      writeControl(sink, typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
      callback();
    },
  });
  return Object.assign(stream, { isTTY: true, columns: 100 });
}

export function startProgress(
  sink: TextSink,
  options: { quiet: boolean; totalBytes: number; totalFiles: number; now?: () => number },
): ReplayProgress {
  if (options.quiet || sink.isTTY !== true || options.totalFiles === 0) return SILENT;
  const now = options.now ?? Date.now;
  const started = now();
  const bar = new SingleBar({
    stream: terminalStream(sink),
    format:
      'replay [{bar}] {percentage}% | {doneMib}/{totalMib} MiB | {speed} MiB/s | ETA {etaText} | files {files}/{totalFiles}',
    barsize: 24,
    hideCursor: true,
    clearOnComplete: false,
  });
  let bytes = 0;
  let files = 0;
  const payload = () => {
    const seconds = Math.max(0.001, (now() - started) / 1000);
    const rate = bytes / seconds;
    return {
      doneMib: mib(bytes),
      totalMib: mib(options.totalBytes),
      speed: (rate / MIB).toFixed(1),
      // From the average rate so far; nothing to go on before the first file is done.
      etaText: bytes > 0 ? duration((options.totalBytes - bytes) / rate) : '--',
      files,
      totalFiles: options.totalFiles,
    };
  };
  bar.start(Math.max(1, options.totalBytes), 0, payload());
  return {
    fileDone(n: number) {
      bytes += n;
      files += 1;
      bar.update(bytes, payload());
    },
    stop() {
      bar.update(bytes, payload());
      bar.stop();
    },
  };
}
