import { Agent, request, type IncomingHttpHeaders } from 'node:http';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Body bytes received (also counted when the body is discarded). */
  received: number;
  /** The client's port of the connection that carried it (which server process took it: see connections.ts). */
  localPort: number;
}

export interface RequestOptions {
  headers?: Record<string, string | number>;
  body?: Buffer;
  /** Count the body's bytes but do not keep them (large pulls). */
  discard?: boolean;
  /** Statuses that count as success; anything else throws with the body. */
  expect?: readonly number[];
}

/**
 * A lean load-generating client for one registry: node:http over a keep-alive agent, bodies sent
 * from memory in one write, responses either kept or only counted. Everything the bench does to
 * a registry goes through here, so both servers see exactly the same requests.
 */
/** A reply whose status the caller did not expect. */
export class UnexpectedStatusError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'UnexpectedStatusError';
  }
}

export class HttpTarget {
  private readonly agent: Agent;

  constructor(
    readonly name: string,
    readonly host: string,
    readonly port: number,
    maxSockets = 64,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  get hostPort(): string {
    return `${this.host}:${this.port}`;
  }

  request(method: string, path: string, options: RequestOptions = {}): Promise<Reply> {
    const headers: Record<string, string | number> = { ...options.headers };
    if (options.body) headers['Content-Length'] = options.body.length;
    else if (method === 'PUT' || method === 'POST' || method === 'PATCH') headers['Content-Length'] = 0;
    return new Promise((resolve, reject) => {
      const req = request({ host: this.host, port: this.port, method, path, headers, agent: this.agent }, (res) => {
        const localPort = res.socket?.localPort ?? 0;
        const chunks: Buffer[] = [];
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (!options.discard) chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const reply: Reply = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), received, localPort };
          const expect = options.expect ?? [200, 201, 202, 204, 206];
          if (!expect.includes(reply.status)) {
            reject(new UnexpectedStatusError(`${this.name}: ${method} ${path} answered ${reply.status}: ${reply.body.subarray(0, 300).toString()}`, reply.status));
          } else {
            resolve(reply);
          }
        });
      });
      req.on('error', reject);
      req.end(options.body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The path (and query) of an upload Location, whether the server sent it absolute or relative. */
export function locationPath(reply: Reply): string {
  const location = reply.headers.location;
  if (!location) throw new Error(`no Location header in a ${reply.status} reply`);
  return location.startsWith('/') ? location : (() => {
    const url = new URL(location);
    return url.pathname + url.search;
  })();
}

/** Appends a query parameter to a path that may already have a query. */
export function withQuery(path: string, key: string, value: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}${key}=${encodeURIComponent(value)}`;
}

/** Runs `task(i)` for i in [0, count) with at most `parallel` in flight; rejects on the first failure. */
export async function runParallel(count: number, parallel: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async () => {
    while (failed === undefined && next < count) {
      const index = next;
      next += 1;
      try {
        await task(index);
      } catch (error) {
        failed ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, lane));
  if (failed !== undefined) throw failed;
}
