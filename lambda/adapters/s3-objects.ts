import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';

/**
 * Objects of an S3 bucket read as a source of text to scan (`keyguard scan s3://bucket/prefix`): the listing
 * (ListObjectsV2, every page through ContinuationToken) and each object's body as a stream, never whole.
 * The client comes from the caller (the CLI's profile, region and retry policy; AWS_ENDPOINT_URL_S3 is read by the
 * SDK itself).
 */

export interface S3ObjectEntry {
  key: string;
  lastModified?: Date;
  size?: number;
}

export interface S3ObjectBody {
  /** The object's bytes as S3 sends them (gzip stays gzip: the caller decides). */
  body: AsyncIterable<Uint8Array>;
  contentEncoding?: string;
  contentType?: string;
  /** Releases the connection when the body is not read to its end. */
  close(): void;
}

export class S3Objects {
  constructor(private readonly client: S3Client) {}

  /** Every object under `prefix`, page by page (S3 returns keys in UTF-8 binary order). */
  async *list(bucket: string, prefix: string): AsyncGenerator<S3ObjectEntry[]> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          ...(prefix ? { Prefix: prefix } : {}),
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      yield (page.Contents ?? []).flatMap((o) =>
        o.Key === undefined
          ? []
          : [
              {
                key: o.Key,
                ...(o.LastModified ? { lastModified: o.LastModified } : {}),
                ...(o.Size === undefined ? {} : { size: o.Size }),
              },
            ],
      );
      // A truncated page without a next token would list the same page forever: stop (S3 always sends one).
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async open(bucket: string, key: string): Promise<S3ObjectBody> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const body = out.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    const empty: AsyncIterable<Uint8Array> = { async *[Symbol.asyncIterator]() {} };
    return {
      body: body ?? empty,
      ...(out.ContentEncoding ? { contentEncoding: out.ContentEncoding } : {}),
      ...(out.ContentType ? { contentType: out.ContentType } : {}),
      close: () => body?.destroy?.(),
    };
  }
}
