import { isUtf8 } from 'node:buffer';
import {
  close,
  closeSync,
  constants,
  createReadStream,
  type Dirent,
  fstat,
  fstatSync,
  open,
  openSync,
  read,
  readFile,
  readFileSync,
  readSync,
  type Stats,
} from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { isUint32Array } from 'node:util/types';
import { createGunzip, gunzip, gunzipSync, constants as zlibConstants } from 'node:zlib';
import { directoryMayHold, logFileMayHold, OPEN_WINDOW, type ReplayWindow } from './archive-window';

/**
 * Input files for `keyguard replay`: discovery (files and directories, recursively, pruned by the window),
 * reading, gzip decompression and the shapes of JSON replay reads (CloudTrail log files, EventBridge events,
 * CloudTrail records, CloudTrail Lake query results, LookupEvents output). archive-scan.ts streams them.
 *
 * Nothing here validates record fields or looks at their content beyond the shape of the container: the
 * caller decides which entries matter, so the cost of zod validation is paid only for the rare relevant one.
 * Error messages never quote file content (a record may hold a secret).
 */

/** Extensions picked up when walking a directory (each also as `.gz`). */
const INPUT_EXTENSIONS = ['.json', '.jsonl', '.ndjson'] as const;
const LINE_EXTENSIONS = ['.jsonl', '.ndjson'] as const;
/**
 * CloudTrail digest files and Insights files sit next to log files and are not logs of API calls: an Insights
 * event only counts calls (its `insightDetails` name an event, never a key).
 */
const NOT_LOG_MARKERS = ['_CloudTrail-Digest_', '_CloudTrail-Insight_'] as const;
/**
 * The S3 layout's digest and Insights trees (`AWSLogs/[o-org/]<account>/CloudTrail-Digest/...`,
 * `.../CloudTrail-Insight/...`): never searched.
 */
const NOT_LOG_DIRECTORIES: ReadonlySet<string> = new Set(['CloudTrail-Digest', 'CloudTrail-Insight']);
export interface InputFile {
  /** As shown to the user: the argument, joined with the path below it for files found in a directory. */
  display: string;
  absolute: string;
  /** Size on disk (compressed for .gz): the unit of progress. */
  bytes: number;
}

export interface InputProblem {
  path: string;
  /** 1-based line for NDJSON input. */
  line: number | null;
  reason: string;
}

export interface Entry {
  /** `record`: a CloudTrail record; `eventbridge`: an EventBridge event whose `detail` is one. */
  envelope: 'record' | 'eventbridge';
  value: Record<string, unknown>;
  line: number | null;
}

function stripGz(name: string): string {
  return name.toLowerCase().endsWith('.gz') ? name.slice(0, -3) : name;
}

function isInputName(name: string): boolean {
  const base = stripGz(name.toLowerCase());
  return (
    !NOT_LOG_MARKERS.some((marker) => name.includes(marker)) &&
    INPUT_EXTENSIONS.some((ext) => base.endsWith(ext))
  );
}

export function isLineDelimited(name: string): boolean {
  const base = stripGz(name.toLowerCase());
  return LINE_EXTENSIONS.some((ext) => base.endsWith(ext));
}

function reasonOf(err: unknown): string {
  if (err !== null && typeof err === 'object' && 'code' in err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT') return 'no such file or directory';
    if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
    if (code === 'EISDIR') return 'is a directory';
  }
  return messageOf(err);
}

/** The message of an error (checked by shape: errors from Node's internals may come from another realm). */
export function messageOf(err: unknown): string {
  if (err !== null && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') {
    return (err as { message: string }).message;
  }
  return String(err);
}

interface Discovery {
  files: InputFile[];
  problems: InputProblem[];
  /** Log files and date directories left out by their path date (outside --since/--until). */
  skippedByDate: number;
}

/** What a file that is not a regular file is, for the message that skips it. */
function kindOf(s: Stats): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  return 'not a file';
}

/** Why a file is skipped unread: reading a FIFO or a device blocks or never ends. */
function notRegular(s: Stats): string {
  return `not a regular file (${kindOf(s)}): skipped`;
}

async function walk(
  dirDisplay: string,
  dirAbsolute: string,
  window: ReplayWindow,
  out: Discovery,
): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(dirAbsolute, { withFileTypes: true });
  } catch (err) {
    // One unreadable directory is reported; its siblings and the rest of the argument are still searched.
    out.problems.push({
      path: dirDisplay,
      line: null,
      reason: `cannot read the directory: ${reasonOf(err)}`,
    });
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const display = join(dirDisplay, e.name);
    const absolute = join(dirAbsolute, e.name);
    if (e.isDirectory()) {
      if (NOT_LOG_DIRECTORIES.has(e.name)) continue;
      if (directoryMayHold(window, absolute)) await walk(display, absolute, window, out);
      else out.skippedByDate += 1;
    } else if (isInputName(e.name)) {
      if (!logFileMayHold(window, e.name)) {
        out.skippedByDate += 1;
        continue;
      }
      try {
        // A symbolic link is followed to a file (not to a directory: no cycles to guard against).
        const s = await stat(absolute);
        if (s.isFile()) out.files.push({ display, absolute, bytes: s.size });
        else if (!s.isDirectory()) out.problems.push({ path: display, line: null, reason: notRegular(s) });
      } catch (err) {
        out.problems.push({ path: display, line: null, reason: reasonOf(err) });
      }
    }
  }
}

/**
 * Expands the arguments into input files: a file is taken as given (whatever its name), a directory is
 * searched recursively for `.json`, `.jsonl`, `.ndjson` (and their `.gz`), in name order. Under a window, the
 * date directories and CloudTrail-named log files of the S3 layout that cannot hold a record of it are left
 * out unread (see archive-window.ts); a file named as an argument is always read.
 */
export async function discoverInputs(
  args: readonly string[],
  cwd: string,
  window: ReplayWindow = OPEN_WINDOW,
): Promise<Discovery> {
  const files: InputFile[] = [];
  const found: Discovery = { files: [], problems: [], skippedByDate: 0 };
  const seen = new Set<string>();
  for (const arg of args) {
    const absolute = resolve(cwd, arg);
    found.files = [];
    try {
      const s = await stat(absolute);
      if (s.isDirectory()) await walk(arg, absolute, window, found);
      else if (s.isFile()) found.files.push({ display: arg, absolute, bytes: s.size });
      else found.problems.push({ path: arg, line: null, reason: notRegular(s) });
    } catch (err) {
      found.problems.push({ path: arg, line: null, reason: reasonOf(err) });
      continue;
    }
    for (const f of found.files) {
      if (seen.has(f.absolute)) continue;
      seen.add(f.absolute);
      files.push(f);
    }
  }
  return { files, problems: found.problems, skippedByDate: found.skippedByDate };
}

/**
 * Describes a JSON.parse failure without quoting the input: V8's messages can include a snippet of the
 * text, which could be part of a secret.
 */
export function describeJsonError(err: unknown, text: string): string {
  const message = messageOf(err);
  const at = /at position (\d+)/.exec(message);
  if (at?.[1] !== undefined) {
    const pos = Number(at[1]);
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n');
    return `invalid JSON at line ${line}, column ${column}`;
  }
  if (/unexpected end/i.test(message)) return 'invalid JSON: unexpected end of input';
  if (/unterminated string/i.test(message)) return 'invalid JSON: unterminated string';
  return 'invalid JSON: unexpected token';
}

const UNRECOGNISED =
  'not a CloudTrail log file ({"Records": [...]}), an EventBridge event, a CloudTrail record, ' +
  'CloudTrail Lake query results or LookupEvents output';

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * What one JSON value holds: entries ready to classify, or records still in their JSON string form (CloudTrail
 * Lake's `eventJson`, LookupEvents' `CloudTrailEvent`), which the caller parses only when they may matter.
 */
export type Item = { kind: 'entry'; entry: Entry } | { kind: 'embedded'; json: string; line: number | null };

/** The value of a key, compared without case (CloudTrail Lake column names are as the query wrote them). */
function field(o: Record<string, unknown>, name: string): unknown {
  if (name in o) return o[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k];
  return undefined;
}

/** A record held by a Lake row or a LookupEvents event: as a string, an object, or absent (undefined). */
function heldRecord(o: Record<string, unknown>): unknown {
  const lake = field(o, 'eventJson');
  return lake !== undefined ? lake : o.CloudTrailEvent;
}

function pushHeld(held: unknown, line: number | null, out: Item[]): string | null {
  if (typeof held === 'string') {
    out.push({ kind: 'embedded', json: held, line });
    return null;
  }
  if (isObject(held)) {
    out.push({ kind: 'entry', entry: { envelope: 'record', value: held, line } });
    return null;
  }
  return 'the record (eventJson or CloudTrailEvent) is neither a JSON string nor an object';
}

/** GetQueryResults rows are lists of one-column objects: `[{"eventJson": "..."}, {"eventTime": "..."}]`. */
function lakeRow(row: unknown): Record<string, unknown> | null {
  if (isObject(row)) return row;
  if (!Array.isArray(row)) return null;
  const merged: Record<string, unknown> = {};
  for (const cell of row) {
    if (!isObject(cell)) return null;
    Object.assign(merged, cell);
  }
  return merged;
}

/**
 * Turns one decoded JSON value into items; returns a reason when its shape is not one replay reads (the caller
 * then drops the items: a file of an unknown shape is rejected whole, rather than replayed in part).
 */
export function itemsOf(value: unknown, line: number | null, out: Item[]): string | null {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      if (Array.isArray(v)) return `item ${i}: ${UNRECOGNISED}`;
      const why = itemsOf(v, line, out);
      if (why) return `item ${i}: ${why}`;
    }
    return null;
  }
  if (!isObject(value)) return UNRECOGNISED;
  if (Array.isArray(value.Records)) {
    for (const [i, r] of value.Records.entries()) {
      if (!isObject(r)) return `Records[${i}] is not a JSON object`;
      out.push({ kind: 'entry', entry: { envelope: 'record', value: r, line } });
    }
    return null;
  }
  // `aws cloudtrail lookup-events` output.
  if (Array.isArray(value.Events)) {
    for (const [i, e] of value.Events.entries()) {
      if (!isObject(e) || e.CloudTrailEvent === undefined) return `Events[${i}] has no CloudTrailEvent`;
      const why = pushHeld(e.CloudTrailEvent, line, out);
      if (why) return `Events[${i}]: ${why}`;
    }
    return null;
  }
  // CloudTrail Lake `get-query-results` output.
  if (Array.isArray(value.QueryResultRows)) {
    for (const [i, r] of value.QueryResultRows.entries()) {
      const row = lakeRow(r);
      const held = row === null ? undefined : field(row, 'eventJson');
      if (row === null || held === undefined) {
        return `QueryResultRows[${i}] has no eventJson column (query with SELECT eventJson)`;
      }
      const why = pushHeld(held, line, out);
      if (why) return `QueryResultRows[${i}]: ${why}`;
    }
    return null;
  }
  // One Lake result row or one LookupEvents event (e.g. a line of JSON Lines).
  const held = heldRecord(value);
  if (held !== undefined) return pushHeld(held, line, out);
  if (typeof value['detail-type'] === 'string' || (isObject(value.detail) && 'source' in value)) {
    out.push({ kind: 'entry', entry: { envelope: 'eventbridge', value, line } });
    return null;
  }
  if (typeof value.eventName === 'string' || typeof value.eventSource === 'string') {
    out.push({ kind: 'entry', entry: { envelope: 'record', value, line } });
    return null;
  }
  return UNRECOGNISED;
}

const gunzipAsync = promisify(gunzip);
// File descriptors rather than FileHandles: a FileHandle per file costs a replay of many small files about a
// third more time (measured on the replay benchmark's archive).
const openAsync = promisify(open);
const fstatAsync = promisify(fstat);
const closeAsync = promisify(close);
const readAsync = promisify(read);
const readFileAsync = promisify(readFile);

/** zlib's output chunk, and the read size: the default (16 KiB) costs several times the CPU on multi-MiB files. */
const READ_CHUNK = 1 << 20;

export const MiB = 1024 * 1024;

/** Deflate's best ratio is about 1032:1: no gzip member inflates to more than this per compressed byte. */
const MAX_DEFLATE_RATIO = 1032;

/** Why a gzip file could not be read: over the size limit, or not inflatable. */
function gunzipFailure(err: unknown, maxBytes: number): string {
  if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
    return `${new InputTooLargeError(maxBytes, true).message}: not read`;
  }
  return `cannot decompress (gzip): ${reasonOf(err)}`;
}

/**
 * zlib's output chunk for a whole gzip file: the size its trailer announces (ISIZE, the last member's size mod
 * 2^32), plus one byte so the output never fills the chunk exactly (zlib would then allocate another), bounded
 * by what the file can inflate to and by `maxBytes`. The file then inflates into one buffer and is not copied
 * again to join 1 MiB chunks (that copy, into fresh memory, cost more than finding the records). The trailer is
 * only a hint: a false one costs chunks and a copy, never bytes (maxOutputLength still caps the output).
 */
export function gunzipChunkSize(gz: Uint8Array, maxBytes: number): number {
  if (gz.length < 18) return READ_CHUNK;
  const tail = gz.length - 4;
  const isize =
    ((gz[tail] as number) | ((gz[tail + 1] as number) << 8) | ((gz[tail + 2] as number) << 16)) +
    (gz[tail + 3] as number) * 2 ** 24;
  const bound = Math.min(isize + 1, maxBytes + 1, gz.length * MAX_DEFLATE_RATIO);
  return Math.max(READ_CHUNK, bound);
}

/**
 * Bounds on what replay reads (the CLI's --max-file-size and --max-record-size), so that no input, however
 * made, can take the process's memory: a gzip bomb is cut off at maxFileBytes, and no single JSON text longer
 * than maxRecordBytes is decoded or parsed (a line of NDJSON is dropped as it streams, never held whole).
 */
export interface ReadLimits {
  /** Bytes read from one file, after decompression. */
  maxFileBytes: number;
  /** Bytes of one record or JSON line. */
  maxRecordBytes: number;
}

/**
 * A CloudTrail log file is at most some tens of MiB once decompressed (a 5-minute delivery), an EventBridge
 * event at most 256 KiB: 512 MiB per file and 32 MiB per record are generous for real input, and bound memory
 * (a file read whole is one Buffer, and 512 MiB is about the longest string V8 can make of it).
 */
export const DEFAULT_READ_LIMITS: ReadLimits = { maxFileBytes: 512 * MiB, maxRecordBytes: 32 * MiB };

/** A size limit as the user set it: whole MiB, else bytes (tests use small limits). */
export function sizeText(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes} bytes`;
}

/** A file that could not be read (in full): the message is the problem's reason. */
export class InputReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputReadError';
  }
}

/** A file that holds more than the limit (decompressed); what was read before it may have been used. */
export class InputTooLargeError extends InputReadError {
  constructor(
    readonly limit: number,
    readonly gzip: boolean,
  ) {
    super(`more than ${sizeText(limit)}${gzip ? ' once decompressed' : ''} (--max-file-size)`);
    this.name = 'InputTooLargeError';
  }
}

export interface ReadOptions {
  /** Bytes (decompressed) after which reading stops with InputTooLargeError. */
  maxBytes: number;
  /** Called as bytes arrive: the watchdog's sign that the file is making progress. */
  onProgress?: () => void;
  /** Aborting stops the read and closes the file (a file given up on by the watchdog). */
  signal?: AbortSignal;
}

/**
 * Opens a file only if it is a regular file. O_NONBLOCK: opening a FIFO for reading would otherwise wait for
 * a writer for ever (and a path checked earlier may have been replaced since).
 */
async function openRegular(path: string): Promise<{ fd: number; size: number }> {
  let fd: number;
  try {
    fd = await openAsync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new InputReadError(`cannot read: ${reasonOf(err)}`);
  }
  try {
    const s = await fstatAsync(fd);
    if (!s.isFile()) throw new InputReadError(notRegular(s));
    return { fd, size: s.size };
  } catch (err) {
    await closeAsync(fd);
    throw err instanceof InputReadError ? err : new InputReadError(`cannot read: ${reasonOf(err)}`);
  }
}

/**
 * The bytes of a file, decompressed when it starts with gzip's magic number, in chunks of about 1 MiB. Throws
 * InputReadError (its message is the problem) when the file cannot be read or decompressed, and
 * InputTooLargeError once more than `maxBytes` came out of it.
 */
export async function* readChunks(file: InputFile, options: ReadOptions): AsyncGenerator<Buffer> {
  const { fd } = await openRegular(file.absolute);
  /** The file stream, once made: it closes the descriptor itself (after any read in flight). */
  let raw: Readable | null = null;
  let input: Readable | null = null;
  let readFailure: unknown = null;
  const abort = () => {
    input?.destroy(new Error('given up'));
    raw?.destroy();
  };
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    const head = Buffer.alloc(2);
    let gzip: boolean;
    try {
      const { bytesRead } = await readAsync(fd, head, 0, 2, 0);
      gzip = bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
    } catch (err) {
      throw new InputReadError(`cannot read: ${reasonOf(err)}`);
    }
    if (!gzip && file.display.toLowerCase().endsWith('.gz')) {
      throw new InputReadError('cannot decompress (gzip): not in gzip format');
    }
    const stream = createReadStream('', { fd, start: 0, highWaterMark: READ_CHUNK, autoClose: true });
    raw = stream;
    stream.on('error', (err) => {
      readFailure ??= err;
    });
    if (gzip) {
      const gunzip = createGunzip({ chunkSize: READ_CHUNK });
      stream.on('error', (err) => gunzip.destroy(err));
      input = stream.pipe(gunzip);
    } else {
      input = stream;
    }
    if (options.signal?.aborted) abort();
    let total = 0;
    const chunks = input[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<unknown>;
      try {
        next = await chunks.next();
      } catch (err) {
        if (readFailure !== null || !gzip)
          throw new InputReadError(`cannot read: ${reasonOf(readFailure ?? err)}`);
        throw new InputReadError(`cannot decompress (gzip): ${reasonOf(err)}`);
      }
      if (next.done) return;
      const chunk = next.value as Buffer;
      total += chunk.length;
      if (total > options.maxBytes) throw new InputTooLargeError(options.maxBytes, gzip);
      options.onProgress?.();
      yield chunk;
    }
  } finally {
    options.signal?.removeEventListener('abort', abort);
    input?.destroy();
    if (raw) raw.destroy();
    else await closeAsync(fd);
  }
}

/**
 * Reads a file whole, gunzipped when it is gzip, at most `maxBytes` of it (zlib stops decompressing there: a
 * gzip bomb costs at most that much memory); the error says which step failed. One read and one zlib call:
 * streaming the same bytes in chunks costs about twice the CPU (garbage collection of the chunks).
 */
export async function loadBytes(
  file: InputFile,
  options: ReadOptions & { sync?: boolean; scratch?: InflateBuffer },
): Promise<{ bytes: Buffer } | { error: string }> {
  if (options.sync) return loadBytesSync(file, options);
  let opened: Awaited<ReturnType<typeof openRegular>>;
  try {
    opened = await openRegular(file.absolute);
  } catch (err) {
    if (err instanceof InputReadError) return { error: err.message };
    throw err;
  }
  const { fd, size } = opened;
  try {
    if (size > options.maxBytes)
      return { error: `${new InputTooLargeError(options.maxBytes, false).message}: not read` };
    let buf: Buffer;
    try {
      buf = await readFileAsync(fd);
    } catch (err) {
      return { error: `cannot read: ${reasonOf(err)}` };
    }
    options.onProgress?.();
    if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
      try {
        buf = await gunzipAsync(buf, {
          chunkSize: gunzipChunkSize(buf, options.maxBytes),
          maxOutputLength: options.maxBytes,
        });
      } catch (err) {
        return { error: gunzipFailure(err, options.maxBytes) };
      }
    } else if (file.display.toLowerCase().endsWith('.gz')) {
      return { error: 'cannot decompress (gzip): not in gzip format' };
    }
    return { bytes: buf };
  } finally {
    await closeAsync(fd);
  }
}

/**
 * Where one thread inflates whole files, one after another: the memory of the last file is used again for the
 * next. Memory the process has not touched yet costs about twice as much as inflating into it (page faults, on
 * this machine's kind; zlib itself runs near 1 ns a byte on memory already in use): reusing it made a worker's
 * decompression about three times cheaper on the replay benchmark's archive. A file's bytes are valid until
 * the next file is inflated into the same InflateBuffer.
 */
export class InflateBuffer {
  buffer: Buffer | null = null;
  /** The file as read (gzip bytes, or the text of a plain file), in memory used again likewise. */
  input: Buffer | null = null;
}

/** Reads the rest of a file (`size` bytes expected, more if it grew) into `scratch`'s input memory. */
function readInto(fd: number, size: number, scratch: InflateBuffer): Buffer {
  let buf = scratch.input;
  // One byte more than expected: the read that finds the end needs no larger buffer.
  if (buf === null || buf.length < size + 1) buf = Buffer.allocUnsafe(Math.max(size + 1, 64 * 1024));
  let n = 0;
  for (;;) {
    if (n === buf.length) {
      const grown = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(grown, 0, 0, n);
      buf = grown;
    }
    const got = readSync(fd, buf, n, buf.length - n, null);
    if (got === 0) break;
    n += got;
  }
  scratch.input = buf.length > KEEP_INFLATE_BYTES ? null : buf;
  return buf.subarray(0, n);
}

/** An InflateBuffer grown past this is not kept after its file (one huge file must not hold memory for good). */
const KEEP_INFLATE_BYTES = 64 * MiB;

/** The parts of Node's zlib object that inflateInto drives (Node 18 to 24; checked at run time). */
interface ZlibEngine {
  _handle?: {
    writeSync?: (
      flush: number,
      input: Uint8Array,
      inOff: number,
      inLen: number,
      out: Uint8Array,
      outOff: number,
      outLen: number,
    ) => void;
    onerror?: (message: string, errno: number, code?: string) => void;
  };
  _writeState?: Uint32Array;
  close(): void;
}

/** zlib's ERR_BUFFER_TOO_LARGE, as gunzipSync throws it (loadBytes reports it as the file limit). */
class InflateTooLargeError extends Error {
  readonly code = 'ERR_BUFFER_TOO_LARGE';
}

/**
 * gunzipSync into `scratch`'s memory: the same zlib (Node's own gunzip object, multi-member files included),
 * the same errors, at most `maxBytes` out. Node has no public call that inflates into a given buffer, so this
 * drives the gunzip object's handle as gunzipSync does inside; where that handle is not as expected (another
 * Node), it falls back to gunzipSync.
 */
export function inflateInto(gz: Buffer, maxBytes: number, scratch: InflateBuffer): Buffer {
  const engine = createGunzip() as unknown as ZlibEngine;
  const handle = engine._handle;
  const state = engine._writeState;
  if (handle?.writeSync === undefined || !isUint32Array(state) || state.length < 2) {
    engine.close();
    return gunzipSync(gz, { chunkSize: gunzipChunkSize(gz, maxBytes), maxOutputLength: maxBytes });
  }
  let failure: Error | null = null;
  handle.onerror = (message, errno, code) => {
    failure ??= Object.assign(new Error(message), { errno, code });
  };
  const limit = maxBytes + 1;
  let out = scratch.buffer;
  const wanted = Math.min(gunzipChunkSize(gz, maxBytes), limit);
  if (out === null || out.length < wanted) out = Buffer.allocUnsafe(wanted);
  let inOff = 0;
  let outOff = 0;
  try {
    for (;;) {
      const inLen = gz.length - inOff;
      const outLen = out.length - outOff;
      handle.writeSync(zlibConstants.Z_FINISH, gz, inOff, inLen, out, outOff, outLen);
      if (failure !== null) throw failure;
      const availOut = state[0] as number;
      const availIn = state[1] as number;
      outOff += outLen - availOut;
      inOff += inLen - availIn;
      // Room left: the stream (every member) ended, or the input did (zlib reported it above).
      if (availOut > 0) break;
      if (out.length >= limit) throw new InflateTooLargeError(`more than ${maxBytes} bytes`);
      const grown = Buffer.allocUnsafe(Math.min(limit, out.length * 2));
      out.copy(grown, 0, 0, outOff);
      out = grown;
    }
  } finally {
    engine.close();
  }
  scratch.buffer = out.length > KEEP_INFLATE_BYTES ? null : out;
  return out.subarray(0, outOff);
}

/**
 * loadBytes in this thread, for a worker thread that has nothing else to do meanwhile: the same checks, limits
 * and messages, without the hops to libuv's thread pool (open, fstat, read, close and zlib each one), which cost
 * a replay about half as much CPU again as the reading itself (measured on the replay benchmark's archive). An
 * abort cannot interrupt it: the pool stops a stuck worker by terminating it.
 */
function loadBytesSync(
  file: InputFile,
  options: ReadOptions & { scratch?: InflateBuffer },
): { bytes: Buffer } | { error: string } {
  let fd: number;
  try {
    fd = openSync(file.absolute, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return { error: `cannot read: ${reasonOf(err)}` };
  }
  try {
    let size: number;
    try {
      const s = fstatSync(fd);
      if (!s.isFile()) return { error: notRegular(s) };
      size = s.size;
    } catch (err) {
      return { error: `cannot read: ${reasonOf(err)}` };
    }
    if (size > options.maxBytes)
      return { error: `${new InputTooLargeError(options.maxBytes, false).message}: not read` };
    let buf: Buffer;
    try {
      buf = options.scratch ? readInto(fd, size, options.scratch) : readFileSync(fd);
    } catch (err) {
      return { error: `cannot read: ${reasonOf(err)}` };
    }
    options.onProgress?.();
    if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
      try {
        buf = options.scratch
          ? inflateInto(buf, options.maxBytes, options.scratch)
          : gunzipSync(buf, {
              chunkSize: gunzipChunkSize(buf, options.maxBytes),
              maxOutputLength: options.maxBytes,
            });
      } catch (err) {
        return { error: gunzipFailure(err, options.maxBytes) };
      }
    } else if (file.display.toLowerCase().endsWith('.gz')) {
      return { error: 'cannot decompress (gzip): not in gzip format' };
    }
    return { bytes: buf };
  } finally {
    closeSync(fd);
  }
}

const REPLACEMENT = '\ufffd';
const REPLACEMENT_UTF8 = Buffer.from(REPLACEMENT, 'utf8');
/** Bytes decoded at a time when counting (never one string of a whole file). */
const COUNT_STEP = 16 * MiB;

/**
 * How many invalid UTF-8 sequences the bytes hold: each becomes one U+FFFD when decoded (as replay decodes
 * them), so this is the number of replacement characters decoding makes, less those the text really holds.
 * Fast when the bytes are valid UTF-8 (the usual case).
 */
export function invalidUtf8(bytes: Uint8Array): number {
  if (isUtf8(bytes)) return 0;
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  let replaced = 0;
  for (let at = 0; at < bytes.length; at += COUNT_STEP) {
    const end = Math.min(at + COUNT_STEP, bytes.length);
    const text = decoder.decode(bytes.subarray(at, end), { stream: end < bytes.length });
    for (let i = text.indexOf(REPLACEMENT); i >= 0; i = text.indexOf(REPLACEMENT, i + 1)) replaced += 1;
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let real = 0;
  for (let i = buf.indexOf(REPLACEMENT_UTF8); i >= 0; i = buf.indexOf(REPLACEMENT_UTF8, i + 3)) real += 1;
  return replaced - real;
}

/** UTF-8 text of a file's bytes, without a byte order mark. */
export function textOf(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
