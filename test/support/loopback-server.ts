import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';

/**
 * A self-signed certificate for 127.0.0.1 and localhost (valid until 2126), fixed here so that
 * in-process TLS tests need no openssl child process. It protects nothing: tests only.
 */
export const LOOPBACK_CERT = `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUIRiPqaxfzklKw5sRKNu4TaT0RTowCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMjEwMzk1NFoYDzIxMjYxMTA4
MTAzOTU0WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASktaEkBKDpFqIG3ZVK0kRCdchUd6zjoWzacZCfSZ9IiwdRyscTglgb
6mWhx2f4t2q90Dh8dKYLS+f3zT9gAFH3o28wbTAdBgNVHQ4EFgQUmv4NGqmL9CmB
bAuTL2QfFqr9D1EwHwYDVR0jBBgwFoAUmv4NGqmL9CmBbAuTL2QfFqr9D1EwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSAAwRQIgZoQeZskXUaMitn1kguVdVDCZzrsb/mMassEb+nrrJ+oCIQCs
5I++wbHM9DJ4YGZ76JUfZznB1sYzwSTuQMIxIQh28A==
-----END CERTIFICATE-----`;
export const LOOPBACK_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAFHUp345SopjHzTm
7cbo6V9fLwGGn8NNwUfd8jcELZ+hRANCAASktaEkBKDpFqIG3ZVK0kRCdchUd6zj
oWzacZCfSZ9IiwdRyscTglgb6mWhx2f4t2q90Dh8dKYLS+f3zT9gAFH3
-----END PRIVATE KEY-----`;

/** One request as a loopback server saw it (the body read whole). */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface LoopbackServer {
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  /** `http://127.0.0.1:PORT` (https with `tls`) */
  url: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

export type LoopbackHandler = (req: SeenRequest, res: ServerResponse, raw: IncomingMessage) => unknown;

/**
 * An HTTP (or, with `tls`, HTTPS with LOOPBACK_-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUIRiPqaxfzklKw5sRKNu4TaT0RTowCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMjEwMzk1NFoYDzIxMjYxMTA4
MTAzOTU0WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASktaEkBKDpFqIG3ZVK0kRCdchUd6zjoWzacZCfSZ9IiwdRyscTglgb
6mWhx2f4t2q90Dh8dKYLS+f3zT9gAFH3o28wbTAdBgNVHQ4EFgQUmv4NGqmL9CmB
bAuTL2QfFqr9D1EwHwYDVR0jBBgwFoAUmv4NGqmL9CmBbAuTL2QfFqr9D1EwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSAAwRQIgZoQeZskXUaMitn1kguVdVDCZzrsb/mMassEb+nrrJ+oCIQCs
5I++wbHM9DJ4YGZ76JUfZznB1sYzwSTuQMIxIQh28A==
-----END CERTIFICATE-----) server on 127.0.0.1 inside the test process.
 * Every request is recorded with its body before the handler runs.
 */
export async function startLoopbackServer(handler: LoopbackHandler, options: { tls?: boolean } = {}): Promise<LoopbackServer> {
  const requests: SeenRequest[] = [];
  const listener = (raw: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    raw.on('data', (c: Buffer) => chunks.push(c));
    raw.on('end', () => {
      const seen: SeenRequest = { method: raw.method ?? 'GET', url: raw.url ?? '/', headers: raw.headers, body: Buffer.concat(chunks) };
      requests.push(seen);
      Promise.resolve(handler(seen, res, raw)).catch((error: Error) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(error.message));
      });
    });
  };
  const server: Server = options.tls ? createHttpsServer({ cert: LOOPBACK_CERT, key: LOOPBACK_KEY }, listener) : createHttpServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    host: `127.0.0.1:${port}`,
    port,
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Writes a JSON answer. */
export function sendJson(res: ServerResponse, status: number, doc: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(doc));
}
