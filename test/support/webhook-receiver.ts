import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One POST a receiver got: its headers, exact body and the body parsed. */
export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  body: Buffer;
  json: any;
}

export interface WebhookReceiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** How many requests it turned away (answered with an error status). */
  refused(): number;
  /** The requests it turned away, as they came (a sender may have to send them again). */
  turnedAway: ReceivedRequest[];
  /** Every Distribution event received so far, in arrival order. */
  events(): any[];
  /** Waits until `done` holds (checked on every request), or fails after `ms` with what arrived. */
  waitFor(done: (receiver: WebhookReceiver) => boolean, ms?: number): Promise<void>;
  /** Answer every request with this status from now on (503 to play a receiver that is down). */
  answer(status: number): void;
  close(): Promise<void>;
}

/** A real HTTP receiver of notifications on loopback (a given port, to come back where one was down). */
export async function startReceiver(options: { port?: number } = {}): Promise<WebhookReceiver> {
  const requests: ReceivedRequest[] = [];
  const waiters = new Set<() => void>();
  let status = 200;
  let refused = 0;
  const turnedAway: ReceivedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (status < 300) {
        const body = Buffer.concat(chunks);
        requests.push({ headers: req.headers, body, json: JSON.parse(body.toString('utf8')) });
      } else {
        refused += 1;
        const body = Buffer.concat(chunks);
        turnedAway.push({ headers: req.headers, body, json: JSON.parse(body.toString('utf8')) });
      }
      res.statusCode = status;
      res.end();
      for (const wake of waiters) wake();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${port}/events`,
    port,
    requests,
    refused: () => refused,
    turnedAway,
    events: () => requests.flatMap((r) => (Array.isArray(r.json.events) ? r.json.events : [])),
    waitFor(done, ms = 20_000) {
      if (done(receiver)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!done(receiver)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the receiver did not get what was expected; it got:\n${JSON.stringify(receiver.events().map((e) => [e.action, e.target]), null, 1)}`));
        }, ms);
        waiters.add(check);
      });
    },
    answer(next) {
      status = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return receiver;
}
