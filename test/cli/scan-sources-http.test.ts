import { SourceHttp, SourceHttpError } from '../../lambda/cli/scan-sources/http';

/** The collaboration sources' HTTP client reads answers from servers we do not control: bounded. */

/** A response whose body streams `chunks` chunks of 1 MiB of JSON-ish text, counting what was pulled. */
function endless(chunks: number): { response: Response; pulled: () => number } {
  let pulled = 0;
  const chunk = new TextEncoder().encode('['.repeat(1024 * 1024));
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= chunks) controller.close();
      else {
        pulled += 1;
        controller.enqueue(chunk);
      }
    },
  });
  return { response: new Response(body, { status: 200 }), pulled: () => pulled };
}

describe('SourceHttp.json: a hostile server', () => {
  it('refuses an answer larger than the limit, naming the source and method, without reading it all', async () => {
    // Prepare
    const big = endless(10_000);
    const http = new SourceHttp({
      source: 'Slack',
      token: 'xoxb-secret-token',
      fetch: async () => big.response,
      maxJsonBytes: 4 * 1024 * 1024,
    });

    // Act
    const failure = await http
      .json('conversations.history', 'http://127.0.0.1:1/api')
      .catch((e: unknown) => e);

    // Assess
    expect(failure).toBeInstanceOf(SourceHttpError);
    expect((failure as Error).message).toBe(
      'Slack conversations.history: answer larger than 4 MiB: refused (a page of this API is far smaller)',
    );
    expect(big.pulled()).toBeLessThanOrEqual(6);
  });

  it('still reads an answer within the limit', async () => {
    // Prepare
    const http = new SourceHttp({
      source: 'Slack',
      token: 'xoxb-secret-token',
      fetch: async () => new Response('{"ok":true,"channels":[]}', { status: 200 }),
    });

    // Act
    const answer = await http.json('conversations.list', 'http://127.0.0.1:1/api');

    // Assess
    expect(answer).toEqual({ ok: true, channels: [] });
  });
});
