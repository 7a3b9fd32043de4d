import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';

/** How to reach one registry over TLS. */
export interface TlsSettings {
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  caCerts?: string[];
  /** Skip certificate verification (`--insecure`). */
  skipVerify?: boolean;
}

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: OutgoingHttpHeaders;
  /** A Buffer, or a stream that is consumed once. */
  body?: Buffer | Readable;
  signal?: AbortSignal;
}

/** True for localhost, 127.0.0.0/8 and ::1: hosts where plain HTTP cannot leave the machine. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) {
    if (host.startsWith('::ffff:')) return isLoopbackHost(host.slice('::ffff:'.length));
    return host === '::1' || host === '0:0:0:0:0:0:0:1';
  }
  return false;
}

/** The hostname part of `host[:port]`, brackets kept off IPv6 literals. */
export function hostnameOf(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'));
  const colon = registry.lastIndexOf(':');
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

/**
 * Sends HTTP requests with keep-alive agents and the given TLS trust. Redirects are never
 * followed here: the registry client decides what to do with them (credentials must not
 * cross to another host).
 */
export class Transport {
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 8 });
  private readonly httpsAgent: HttpsAgent;

  /** A connection silent for this long is cut (and the request retried or resumed by the caller). */
  private readonly idleTimeoutMs: number;

  constructor(tls: TlsSettings = {}, options: { idleTimeoutMs?: number } = {}) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    const ca = tls.caCerts && tls.caCerts.length > 0 ? [...rootCertificates, ...tls.caCerts] : undefined;
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 8, ...(ca ? { ca } : {}), rejectUnauthorized: !tls.skipVerify });
  }

  send(req: HttpRequest): Promise<IncomingMessage> {
    const { url } = req;
    const secure = url.protocol === 'https:';
    const headers: OutgoingHttpHeaders = { ...req.headers };
    if (Buffer.isBuffer(req.body) && headers['content-length'] === undefined) headers['content-length'] = req.body.length;
    return new Promise((resolve, reject) => {
      const options = {
        method: req.method,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || (secure ? 443 : 80),
        path: url.pathname + url.search,
        headers,
        agent: secure ? this.httpsAgent : this.httpAgent,
        ...(req.signal ? { signal: req.signal } : {}),
      };
      const outgoing = (secure ? httpsRequest : httpRequest)(options, resolve);
      outgoing.on('error', reject);
      outgoing.setTimeout(this.idleTimeoutMs, () => {
        const error: NodeJS.ErrnoException = new Error(`no data from ${url.host} for ${this.idleTimeoutMs / 1000}s`);
        error.code = 'ETIMEDOUT';
        outgoing.destroy(error);
      });
      const body = req.body;
      if (body === undefined) outgoing.end();
      else if (Buffer.isBuffer(body)) outgoing.end(body);
      else {
        body.on('error', (error) => outgoing.destroy(error));
        body.pipe(outgoing);
      }
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** Reads a whole (small) response body: manifests, JSON documents, error bodies. */
export async function readBody(res: IncomingMessage, limit = 32 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      res.destroy();
      throw new Error(`response body larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Drains and discards a response so its socket returns to the pool. */
export function discard(res: IncomingMessage): void {
  res.resume();
}

export function header(res: IncomingMessage, name: string): string | undefined {
  const value = res.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}

export { Readable };
