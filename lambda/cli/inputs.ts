import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';

/**
 * Input files for `keyguard replay`: discovery (files and directories, recursively), reading, gzip
 * decompression and JSON/NDJSON decoding into entries (CloudTrail records or EventBridge events).
 *
 * Nothing here validates record fields or looks at their content beyond the shape of the container: the
 * caller decides which entries matter, so the cost of zod validation is paid only for the rare relevant one.
 * Error messages never quote file content (a record may hold a secret).
 */

const gunzipAsync = promisify(gunzip);

/** Extensions picked up when walking a directory (each also as `.gz`). */
const INPUT_EXTENSIONS = ['.json', '.jsonl', '.ndjson'] as const;
const LINE_EXTENSIONS = ['.jsonl', '.ndjson'] as const;
/** CloudTrail digest files sit next to log files and are not logs. */
const DIGEST_MARKER = '_CloudTrail-Digest_';
/** Files read and decompressed ahead of the one being decoded (bounded memory, overlapped I/O). */
const READ_AHEAD = 4;

export interface InputFile {
  /** As shown to the user: the argument, joined with the path below it for files found in a directory. */
  display: string;
  absolute: string;
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

export interface DecodedFile {
  file: InputFile;
  entries: Entry[];
  problems: InputProblem[];
}

function stripGz(name: string): string {
  return name.toLowerCase().endsWith('.gz') ? name.slice(0, -3) : name;
}

function isInputName(name: string): boolean {
  const base = stripGz(name.toLowerCase());
  return !name.includes(DIGEST_MARKER) && INPUT_EXTENSIONS.some((ext) => base.endsWith(ext));
}

function isLineDelimited(name: string): boolean {
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

async function walk(dirDisplay: string, dirAbsolute: string, out: InputFile[]): Promise<void> {
  const entries = await readdir(dirAbsolute, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const display = join(dirDisplay, e.name);
    const absolute = join(dirAbsolute, e.name);
    if (e.isDirectory()) await walk(display, absolute, out);
    else if (e.isFile() && isInputName(e.name)) out.push({ display, absolute });
  }
}

/**
 * Expands the arguments into input files: a file is taken as given (whatever its name), a directory is
 * searched recursively for `.json`, `.jsonl`, `.ndjson` (and their `.gz`), in name order.
 */
export async function discoverInputs(
  args: readonly string[],
  cwd: string,
): Promise<{ files: InputFile[]; problems: InputProblem[] }> {
  const files: InputFile[] = [];
  const problems: InputProblem[] = [];
  const seen = new Set<string>();
  for (const arg of args) {
    const absolute = resolve(cwd, arg);
    const found: InputFile[] = [];
    try {
      const s = await stat(absolute);
      if (s.isDirectory()) await walk(arg, absolute, found);
      else found.push({ display: arg, absolute });
    } catch (err) {
      problems.push({ path: arg, line: null, reason: reasonOf(err) });
      continue;
    }
    for (const f of found) {
      if (seen.has(f.absolute)) continue;
      seen.add(f.absolute);
      files.push(f);
    }
  }
  return { files, problems };
}

type Loaded = { file: InputFile; text: string } | { file: InputFile; error: string };

async function load(file: InputFile): Promise<Loaded> {
  let buf: Buffer;
  try {
    buf = await readFile(file.absolute);
  } catch (err) {
    return { file, error: `cannot read: ${reasonOf(err)}` };
  }
  const gzipped = buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  if (gzipped) {
    try {
      buf = await gunzipAsync(buf);
    } catch (err) {
      return { file, error: `cannot decompress (gzip): ${reasonOf(err)}` };
    }
  } else if (file.display.toLowerCase().endsWith('.gz')) {
    return { file, error: 'cannot decompress (gzip): not in gzip format' };
  }
  let text = buf.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return { file, text };
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
  'not a CloudTrail log file ({"Records": [...]}), an EventBridge event or a CloudTrail record';

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Turns one decoded JSON value into entries; returns a reason when its shape is not one replay reads. */
function entriesOf(value: unknown, line: number | null, out: Entry[]): string | null {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      if (Array.isArray(v)) return `item ${i}: ${UNRECOGNISED}`;
      const why = entriesOf(v, line, out);
      if (why) return `item ${i}: ${why}`;
    }
    return null;
  }
  if (!isObject(value)) return UNRECOGNISED;
  if (Array.isArray(value.Records)) {
    for (const [i, r] of value.Records.entries()) {
      if (!isObject(r)) return `Records[${i}] is not a JSON object`;
      out.push({ envelope: 'record', value: r, line });
    }
    return null;
  }
  if (typeof value['detail-type'] === 'string' || (isObject(value.detail) && 'source' in value)) {
    out.push({ envelope: 'eventbridge', value, line });
    return null;
  }
  if (typeof value.eventName === 'string' || typeof value.eventSource === 'string') {
    out.push({ envelope: 'record', value, line });
    return null;
  }
  return UNRECOGNISED;
}

function decodeLines(file: InputFile, text: string): DecodedFile {
  const entries: Entry[] = [];
  const problems: InputProblem[] = [];
  let start = 0;
  let line = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line += 1;
    const raw = text.slice(start, end).trim();
    start = end + 1;
    if (raw.length === 0) continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      problems.push({ path: file.display, line, reason: describeJsonError(err, raw) });
      continue;
    }
    const why = entriesOf(value, line, entries);
    if (why) problems.push({ path: file.display, line, reason: why });
  }
  return { file, entries, problems };
}

/** True when the first non-blank line is a JSON object on its own (newline-delimited JSON). */
function looksLineDelimited(text: string): boolean {
  const trimmed = text.trimStart();
  const nl = trimmed.indexOf('\n');
  if (nl < 0 || trimmed.slice(nl + 1).trim().length === 0) return false;
  try {
    return isObject(JSON.parse(trimmed.slice(0, nl)));
  } catch {
    return false;
  }
}

function decode(loaded: Loaded): DecodedFile {
  const { file } = loaded;
  if ('error' in loaded)
    return { file, entries: [], problems: [{ path: file.display, line: null, reason: loaded.error }] };
  const { text } = loaded;
  if (isLineDelimited(file.display)) return decodeLines(file, text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // `.json` files holding one event per line are common (e.g. saved EventBridge events).
    if (looksLineDelimited(text)) return decodeLines(file, text);
    return {
      file,
      entries: [],
      problems: [{ path: file.display, line: null, reason: describeJsonError(err, text) }],
    };
  }
  const entries: Entry[] = [];
  const why = entriesOf(value, null, entries);
  // A file of an unknown shape is rejected whole, rather than replayed in part.
  if (why) return { file, entries: [], problems: [{ path: file.display, line: null, reason: why }] };
  return { file, entries, problems: [] };
}

/**
 * Yields each file decoded, in the order given. Reading and decompression of the next few files overlap the
 * decoding of the current one; a file that cannot be read, decompressed or parsed yields its problem and no
 * entries, and the others are still read.
 */
export async function* decodeFiles(files: readonly InputFile[]): AsyncGenerator<DecodedFile> {
  const pending: Promise<Loaded>[] = [];
  let next = 0;
  const fill = () => {
    while (pending.length < READ_AHEAD && next < files.length) {
      const f = files[next++];
      if (f) pending.push(load(f));
    }
  };
  fill();
  for (let p = pending.shift(); p; p = pending.shift()) {
    const loaded = await p;
    fill();
    yield decode(loaded);
  }
}
