import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { getProxyForUrl } from 'proxy-from-env';
import type { RegistryRequest, RoundTripper } from './round-tripper.js';

/** How to reach one registry over TLS. */
export interface TlsSettings {
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  caCerts?: string[];
  /** Skip certificate verification (`--insecure`). */
  skipVerify?: boolean;
}

export interface HttpTransportOptions {
  tls?: TlsSettings;
  /** A connection silent for this long is cut with ETIMEDOUT; 60 s by default. */
  idleTimeoutMs?: number;
  /** Sent when a request names no User-Agent of its own. */
  userAgent?: string;
}

/**
 * The bottom of the stack: sends one request over keep-alive agents with the given TLS trust.
 * It never follows redirects, retries or authenticates; the layers above do that. A body given
 * as a function is opened here, once per call, and destroyed when the request fails.
 */
export class HttpTransport implements RoundTripper {
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 8 });
  private readonly httpsAgent: HttpsAgent;
  /** One agent per proxy and scheme, made on first use. */
  private readonly proxyAgents = new Map<string, HttpAgent>();
  private readonly ca: string[] | undefined;
  private readonly skipVerify: boolean;
  private readonly idleTimeoutMs: number;
  private readonly userAgent: string | undefined;

  constructor(options: HttpTransportOptions = {}) {
    const tls = options.tls ?? {};
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.userAgent = options.userAgent;
    const ca = tls.caCerts && tls.caCerts.length > 0 ? [...rootCertificates, ...tls.caCerts] : undefined;
    this.ca = ca;
    this.skipVerify = tls.skipVerify === true;
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 8, ...(ca ? { ca } : {}), rejectUnauthorized: !tls.skipVerify });
  }

  /**
   * The agent for a URL: through the proxy that HTTPS_PROXY / HTTP_PROXY / ALL_PROXY name for
   * it unless NO_PROXY excludes the host (read per request, as docker, crane and skopeo read
   * them); direct otherwise. HTTPS goes through a CONNECT tunnel with our TLS trust end to end.
   */
  private agentFor(url: URL): HttpAgent {
    const secure = url.protocol === 'https:';
    const proxy = proxyFor(url);
    if (!proxy) return secure ? this.httpsAgent : this.httpAgent;
    const key = `${secure ? 'https' : 'http'} ${proxy}`;
    let agent = this.proxyAgents.get(key);
    if (!agent) {
      agent = secure
        ? new HttpsProxyAgent(proxy, { keepAlive: true, maxSockets: 8, ...(this.ca ? { ca: this.ca } : {}), rejectUnauthorized: !this.skipVerify })
        : new HttpProxyAgent(proxy, { keepAlive: true, maxSockets: 8 });
      this.proxyAgents.set(key, agent);
    }
    return agent;
  }

  roundTrip(req: RegistryRequest): Promise<IncomingMessage> {
    const { url } = req;
    const secure = url.protocol === 'https:';
    const headers: OutgoingHttpHeaders = { ...req.headers };
    if (this.userAgent && headers['user-agent'] === undefined) headers['user-agent'] = this.userAgent;
    const body = typeof req.body === 'function' ? req.body() : req.body;
    if (Buffer.isBuffer(body) && headers['content-length'] === undefined) headers['content-length'] = body.length;
    return new Promise((resolve, reject) => {
      const options = {
        method: req.method,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || (secure ? 443 : 80),
        path: url.pathname + url.search,
        headers,
        agent: this.agentFor(url),
        // The TLS trust is given per request too: a proxy agent opens the tunnel's TLS from these.
        ...(secure ? { rejectUnauthorized: !this.skipVerify, ...(this.ca ? { ca: this.ca } : {}) } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
      };
      const outgoing = (secure ? httpsRequest : httpRequest)(options, resolve);
      outgoing.on('error', (error) => {
        if (body && !Buffer.isBuffer(body)) body.destroy();
        reject(error);
      });
      outgoing.setTimeout(this.idleTimeoutMs, () => {
        const error: NodeJS.ErrnoException = new Error(`no data from ${url.host} for ${this.idleTimeoutMs / 1000}s`);
        error.code = 'ETIMEDOUT';
        outgoing.destroy(error);
      });
      if (body === undefined) outgoing.end();
      else if (Buffer.isBuffer(body)) outgoing.end(body);
      else {
        body.on('error', (error) => outgoing.destroy(error));
        body.pipe(outgoing);
      }
    });
  }

  /** Closes pooled connections; requests under way are cut. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    for (const agent of this.proxyAgents.values()) agent.destroy();
  }
}

/**
 * The proxy URL for a request, or undefined to go direct. Loopback is never proxied, as Go's
 * ProxyFromEnvironment (docker, crane, skopeo) never proxies it.
 */
export function proxyFor(url: URL): string | undefined {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host.endsWith('.localhost') || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
  if (loopback) return undefined;
  return getProxyForUrl(url.href) || undefined;
}
