import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';

export interface ProxiedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  status: number;
  /** When the request arrived and when its response was over (ms since the epoch). */
  startedAt: number;
  endedAt?: number;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT` */
  host: string;
  requests: ProxiedRequest[];
  /** Cut the next response whose path matches after this many body bytes. */
  cutAfter(match: RegExp, bytes: number): void;
  /** Send only this many body bytes of the next matching response, then go silent (keep the connection). */
  stallAfter(match: RegExp, bytes: number): void;
  /** How many responses have gone silent so far. */
  stalled(): number;
  /** Answer the next request whose path matches with a 307 to this URL (as an S3-backed registry does). */
  redirectNext(match: RegExp, location: string): void;
  /** Answer the next `count` requests whose path matches with this status (and Retry-After). */
  failNext(match: RegExp, count: number, status: number, retryAfter?: string): void;
  close(): Promise<void>;
}

/**
 * A loopback HTTP proxy in front of a real registry that injects the faults a real network has:
 * a connection dropped mid-body, a 503/429 with Retry-After. Everything else passes through.
 */
export async function startFaultProxy(upstreamHost: string): Promise<FaultProxy> {
  const [upHost, upPort] = upstreamHost.split(':') as [string, string];
  const requests: ProxiedRequest[] = [];
  const cuts: Array<{ match: RegExp; bytes: number }> = [];
  const failures: Array<{ match: RegExp; count: number; status: number; retryAfter?: string }> = [];
  const redirects: Array<{ match: RegExp; location: string }> = [];
  const stalls: Array<{ match: RegExp; bytes: number }> = [];
  let stalledCount = 0;
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    const record: ProxiedRequest = { method: req.method ?? 'GET', path, headers: req.headers, status: 0, startedAt: Date.now() };
    requests.push(record);
    res.on('close', () => (record.endedAt = Date.now()));
    const redirectIndex = redirects.findIndex((r) => r.match.test(path));
    if (redirectIndex >= 0 && req.method === 'GET') {
      const [redirect] = redirects.splice(redirectIndex, 1);
      record.status = 307;
      req.resume();
      res.writeHead(307, { location: redirect!.location }).end();
      return;
    }
    const failure = failures.find((f) => f.count > 0 && f.match.test(path));
    if (failure) {
      failure.count--;
      record.status = failure.status;
      req.resume();
      res.writeHead(failure.status, { 'content-type': 'application/json', ...(failure.retryAfter ? { 'retry-after': failure.retryAfter } : {}) });
      res.end(JSON.stringify({ errors: [{ code: failure.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'injected by the test' }] }));
      return;
    }
    const cutIndex = req.method === 'GET' ? cuts.findIndex((c) => c.match.test(path)) : -1;
    const cut = cutIndex >= 0 ? cuts.splice(cutIndex, 1)[0] : undefined;
    const stallIndex = req.method === 'GET' && !cut ? stalls.findIndex((c) => c.match.test(path)) : -1;
    const stall = stallIndex >= 0 ? stalls.splice(stallIndex, 1)[0] : undefined;
    const upstream = request({ host: upHost, port: Number(upPort), method: req.method, path, headers: { ...req.headers, host: upstreamHost } }, (up) => {
      record.status = up.statusCode ?? 0;
      const headers = { ...up.headers };
      // Location headers point at the upstream; rewrite so the client keeps coming through us.
      if (typeof headers.location === 'string') headers.location = headers.location.replace(`//${upstreamHost}`, `//${req.headers.host}`);
      res.writeHead(up.statusCode ?? 502, headers);
      if (stall) {
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          if (sent >= stall.bytes) return;
          const part = chunk.subarray(0, Math.max(0, stall.bytes - sent));
          sent += part.length;
          res.write(part);
          if (sent >= stall.bytes) {
            stalledCount++;
            up.destroy();
          }
        });
        return;
      }
      if (!cut) {
        up.pipe(res);
        return;
      }
      let sent = 0;
      up.on('data', (chunk: Buffer) => {
        if (sent >= cut.bytes) return;
        const part = chunk.subarray(0, Math.max(0, cut.bytes - sent));
        sent += part.length;
        res.write(part);
        if (sent >= cut.bytes) {
          up.destroy();
          res.socket?.destroy();
        }
      });
      up.on('end', () => res.end());
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    cutAfter: (match, bytes) => cuts.push({ match, bytes }),
    stallAfter: (match, bytes) => stalls.push({ match, bytes }),
    stalled: () => stalledCount,
    redirectNext: (match, location) => redirects.push({ match, location }),
    failNext: (match, count, status, retryAfter) => failures.push({ match, count, status, ...(retryAfter ? { retryAfter } : {}) }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
