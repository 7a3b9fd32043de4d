import { request as httpRequest, Agent } from 'node:http';
import { connect } from 'node:net';
import { Readable } from 'node:stream';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The body parsed as JSON (throws if it is not). */
  json<T = any>(): T;
  header(name: string): string | undefined;
}

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

/**
 * One HTTP request with the path sent exactly as given (no URL normalisation, unlike fetch),
 * so tests can send `..`, `%2e%2e` and `%2f` as a hostile client would.
 */
export function raw(
  base: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string | number>; body?: Buffer | string | Readable | AsyncIterable<Buffer> } = {},
): Promise<RawResponse> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...options.headers };
    const body = options.body;
    if ((typeof body === 'string' || Buffer.isBuffer(body)) && headers['Content-Length'] === undefined) {
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buffer = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: buffer,
          json: () => JSON.parse(buffer.toString('utf8')),
          header: (name: string) => {
            const v = res.headers[name.toLowerCase()];
            return Array.isArray(v) ? v.join(', ') : v;
          },
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else Readable.from(body as AsyncIterable<Buffer>).pipe(req);
  });
}

/** The first error code of an OCI error body. */
export function errorCode(res: RawResponse): string | undefined {
  try {
    return (res.json() as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

/**
 * Sends a POST whose Content-Length promises `declared` bytes, writes only `partial`, then drops
 * the connection: a client that disconnects mid-upload. Resolves once the socket is closed.
 */
export function sendAndHangUp(port: number, path: string, declared: number, partial: Buffer, method = 'POST'): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`);
      socket.write(partial, () => setTimeout(() => socket.destroy(), 100));
    });
    socket.on('close', () => setTimeout(resolve, 100));
    socket.on('error', reject);
  });
}
