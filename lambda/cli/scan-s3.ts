import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { S3Client } from '@aws-sdk/client-s3';
import { S3Objects } from '../adapters/s3-objects';
import type { ByteEncoding, ByteLeakScanner } from '../domain/leak-bytes';
import type { StreamFinding } from '../domain/leak-stream';
import { parseTimeInput } from '../shared/time-input';
import { visible } from '../shared/visible-text';
import { describeAwsFailure, explainAwsFailure, tagAwsErrors } from './aws-errors';
import { DEFAULT_READ_LIMITS } from './inputs';
import type { CliIO } from './io';
import type { Excludes } from './scan-exclude';
import { type AwsTarget, clientConfig } from './stack-outputs';

/**
 * `keyguard scan s3://bucket/prefix` (issue 15 §2): every object under the prefix (lambda/adapters/s3-objects.ts),
 * streamed through the same byte scanner as a local file; gzip objects (the gzip magic bytes, whatever the
 * Content-Encoding, Content-Type or name say) are decompressed on the fly, at most `maxDecompressedBytes` of each
 * (replay's per-file limit: a gzip bomb is cut there and reported). Objects are fetched a few at a time and their
 * findings taken in key order, so the output is the same for any --jobs. Findings point to `s3://bucket/key`.
 */

/** Objects fetched at once, whatever --jobs says: a few connections, not hundreds. */
export const MAX_S3_FETCHES = 8;

export interface S3Location {
  bucket: string;
  prefix: string;
}

export interface S3ScanDeps {
  /** The S3 client of the run. @default the run's profile and region, the CLI's retry policy */
  client?: (target: AwsTarget) => S3Client;
  /** Decompressed bytes read from one gzip object at most. @default DEFAULT_READ_LIMITS.maxFileBytes (512 MiB) */
  maxDecompressedBytes?: number;
}

/** What the scan run gives an S3 source (scan.ts ScanRun). */
export interface S3Sink {
  readonly excludes: Excludes;
  newByteScan(): ByteLeakScanner;
  take(findings: StreamFinding[], path: string): void;
  count(scan: { encoding: ByteEncoding | undefined; invalidUtf8: number }): void;
  /** An object that could not be read (one line on stderr, exit 2). */
  fail(where: string, reason: string): void;
  /** A failure already written on stderr (exit 2). */
  failed(where: string): void;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** `s3://bucket/prefix` → its parts; null when `arg` is not an S3 URL; throws for a malformed one. */
export function parseS3Url(arg: string): S3Location | null {
  if (!/^s3:\/\//i.test(arg)) return null;
  const rest = arg.slice(5);
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  if (!BUCKET.test(bucket)) {
    throw new S3UrlError(
      `${JSON.stringify(visible(arg))}: ${JSON.stringify(visible(bucket))} is not an S3 bucket name ` +
        '(3 to 63 lowercase letters, digits, dots and hyphens); expected s3://BUCKET/PREFIX',
    );
  }
  return { bucket, prefix: slash === -1 ? '' : rest.slice(slash + 1) };
}

export class S3UrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'S3UrlError';
  }
}

const DURATION = /^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/**
 * `--since`: a date (YYYY-MM-DD, midnight UTC), an ISO-8601 timestamp with a zone, or a duration before `now`
 * (`7d`, `12h`, `1d12h`, `30m`, `2w`). Throws S3UrlError naming the value.
 */
export function parseSince(value: string, now: Date): Date {
  const t = parseTimeInput(value);
  if (t.kind === 'date') return t.start;
  if (t.kind === 'instant') return t.at;
  const v = value.trim();
  const d = DURATION.exec(v);
  if (d && v !== '') {
    const [w, days, h, m, s] = d.slice(1).map((x) => Number(x ?? 0)) as [
      number,
      number,
      number,
      number,
      number,
    ];
    const ms = ((((w * 7 + days) * 24 + h) * 60 + m) * 60 + s) * 1000;
    if (ms > 0) return new Date(now.getTime() - ms);
  }
  throw new S3UrlError(
    `--since: got ${JSON.stringify(visible(value))}; allowed: a date YYYY-MM-DD (UTC), an ISO-8601 timestamp with ` +
      'a zone (2026-11-20T09:00:00Z) or a duration before now (30m, 12h, 7d, 2w, 1d12h)',
  );
}

export class DecompressedTooLargeError extends Error {
  constructor(limit: number) {
    super(`more than ${limit} bytes once decompressed (gzip): cut there, the rest was not scanned`);
    this.name = 'DecompressedTooLargeError';
  }
}

const GZIP_MAGIC = [0x1f, 0x8b] as const;

/** The object's bytes, gunzipped when they start with the gzip magic bytes (at most `limit` of them). */
async function* decoded(
  body: AsyncIterable<Uint8Array>,
  limit: number,
): AsyncGenerator<Buffer, void, undefined> {
  const raw = body[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headBytes = 0;
  let ended = false;
  while (headBytes < 2) {
    const next = await raw.next();
    if (next.done) {
      ended = true;
      break;
    }
    head.push(Buffer.from(next.value));
    headBytes += next.value.length;
  }
  const first = Buffer.concat(head);
  const gzip = first[0] === GZIP_MAGIC[0] && first[1] === GZIP_MAGIC[1];
  if (!gzip) {
    if (first.length > 0) yield first;
    if (ended) return;
    for (;;) {
      const next = await raw.next();
      if (next.done) return;
      yield Buffer.from(next.value);
    }
  }
  const source = Readable.from(
    (async function* () {
      yield first;
      if (ended) return;
      for (;;) {
        const next = await raw.next();
        if (next.done) return;
        yield Buffer.from(next.value);
      }
    })(),
  );
  const gunzip = createGunzip();
  source.on('error', (err) => gunzip.destroy(err));
  source.pipe(gunzip);
  let total = 0;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) {
        yield chunk.subarray(0, chunk.length - (total - limit));
        throw new DecompressedTooLargeError(limit);
      }
      yield chunk;
    }
  } finally {
    source.destroy();
    gunzip.destroy();
  }
}

/** One object's scan: its findings (kept until the objects before it are taken) and how it ended. */
interface ObjectScan {
  url: string;
  findings: StreamFinding[];
  scan: ByteLeakScanner;
  error?: string;
}

export interface S3ScanOptions {
  /** Objects last modified before this are skipped. */
  since?: Date;
  jobs: number;
  command: string;
}

/** The S3 source of one run: a client and the listing and reading of each s3:// argument. */
export class S3Source {
  private readonly objects: S3Objects;
  private readonly limit: number;

  constructor(
    private readonly target: AwsTarget,
    private readonly io: CliIO,
    deps: S3ScanDeps = {},
  ) {
    const client = (deps.client ?? ((t) => new S3Client(clientConfig(t))))(target);
    this.objects = new S3Objects(tagAwsErrors(client));
    this.limit = deps.maxDecompressedBytes ?? DEFAULT_READ_LIMITS.maxFileBytes;
  }

  /**
   * Scans every object under `loc`; a listing that fails is one aws-errors line (nothing of that argument is
   * scanned), an object that cannot be read is named with its s3:// URL and the rest are scanned.
   */
  async scan(arg: string, loc: S3Location, sink: S3Sink, opts: S3ScanOptions): Promise<void> {
    // The excludes match keys relative to the prefix's folder (up to its last /), like paths under a folder.
    const base = loc.prefix.slice(0, loc.prefix.lastIndexOf('/') + 1);
    const width = Math.max(1, Math.min(opts.jobs, MAX_S3_FETCHES));
    // Objects are scanned page by page as the listing goes (memory: one page and `width` objects' findings), in
    // the listing's order (S3's: keys in UTF-8 binary order), whatever order the fetches end in.
    const pending: Array<Promise<ObjectScan>> = [];
    const takeFirst = async () => {
      const done = await (pending.shift() as Promise<ObjectScan>);
      sink.take(done.findings, done.url);
      if (done.error === undefined) sink.count(done.scan);
      else sink.fail(done.url, done.error);
    };
    let older = 0;
    let listingError: unknown;
    try {
      for await (const page of this.objects.list(loc.bucket, loc.prefix)) {
        for (const o of page) {
          if (o.key.endsWith('/') && (o.size ?? 0) === 0) continue; // a console "folder"
          if (opts.since && o.lastModified && o.lastModified < opts.since) {
            older += 1;
            continue;
          }
          if (sink.excludes.skip(o.key.slice(base.length))) continue;
          pending.push(this.scanObject(loc.bucket, o.key, sink.newByteScan()));
          if (pending.length >= width) await takeFirst();
        }
      }
    } catch (err) {
      listingError = err;
    }
    while (pending.length > 0) await takeFirst();
    if (opts.since) {
      this.io.stderr.write(
        `keyguard scan: ${visible(arg)}: ${older} object${older === 1 ? '' : 's'} last modified before ` +
          `${opts.since.toISOString()} skipped (--since)\n`,
      );
    }
    if (listingError === undefined) return;
    const failure = await explainAwsFailure(listingError, {
      command: opts.command,
      service: 'S3',
      operation: 'ListObjectsV2',
      region: this.target.region,
      profile: this.target.profile,
      resource: `bucket ${loc.bucket}`,
      deployRegion: this.target.region,
      permissions: `s3:ListBucket on arn:aws:s3:::${loc.bucket} and s3:GetObject on its objects`,
    });
    if (!failure) throw listingError;
    this.io.stderr.write(failure.line);
    sink.failed(arg);
  }

  private async scanObject(bucket: string, key: string, scan: ByteLeakScanner): Promise<ObjectScan> {
    const url = `s3://${bucket}/${key}`;
    const findings: StreamFinding[] = [];
    try {
      const object = await this.objects.open(bucket, key);
      try {
        for await (const chunk of decoded(object.body, this.limit)) findings.push(...scan.write(chunk));
      } finally {
        object.close();
      }
      findings.push(...scan.end());
      return { url, findings, scan };
    } catch (err) {
      findings.push(...scan.end());
      return { url, findings, scan, error: this.why(err, url) };
    }
  }

  private why(err: unknown, url: string): string {
    if (err instanceof DecompressedTooLargeError) return err.message;
    const failure = describeAwsFailure(err, {
      service: 'S3',
      operation: 'GetObject',
      region: this.target.region,
      profile: this.target.profile,
      resource: url,
      deployRegion: this.target.region,
      permissions: `s3:GetObject on ${url} (and kms:Decrypt on its key for an SSE-KMS object)`,
    });
    if (failure) return failure.line.replace(/^keyguard: /, '').trimEnd();
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : String(err);
    return typeof code === 'string' && code.startsWith('Z_')
      ? `cannot decompress (gzip): ${message}`
      : `cannot read: ${message}`;
  }
}
