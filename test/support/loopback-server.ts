import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The base of the tests' fake APIs (Slack, Jira, Confluence): an HTTP server on 127.0.0.1 at a free port, started and
 * stopped by the test, each request answered by the subclass's `answer`.
 */
export abstract class LoopbackServer {
  /** `http://127.0.0.1:<port>` once started. */
  url = '';
  private server: Server | undefined;

  async start(): Promise<void> {
    const server = createServer((req, res) => this.answer(req, res));
    this.server = server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  protected abstract answer(req: IncomingMessage, res: ServerResponse): void;
}
