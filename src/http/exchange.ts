import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Auth } from '../auth/setup.js';
import type { RegistryServices } from '../registry/services.js';
import type { RequestContext } from '../registry/context.js';
import type { ScanAdmin } from '../scan/scan-service.js';
import type { HealthProbes } from './handlers/health.js';
import type { Route } from './router.js';

/** One request as handlers see it. */
export interface Exchange<R extends Route = Route> {
  req: IncomingMessage;
  res: ServerResponse;
  route: R;
  query: URLSearchParams;
  registry: RegistryServices;
  /** Who is asking and a signal that fires when the client goes away. */
  context: RequestContext;
  /** Access control, when configured (the token and admin handlers use it). */
  auth?: Auth;
  /** The serving process's readiness checks (the /readyz handler uses them). */
  health?: HealthProbes;
  /** Image scanning, when on (the admin scan handlers use it). */
  scans?: ScanAdmin;
}

export type Handler<R extends Route = Route> = (exchange: Exchange<R>) => Promise<void>;

/** Ends a response with an optional body; HEAD responses keep their Content-Length but send no body. */
export function send(
  exchange: Pick<Exchange, 'req' | 'res'>,
  status: number,
  headers: Record<string, string | number>,
  body?: Buffer | string,
): void {
  const { req, res } = exchange;
  const payload = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
  res.statusCode = status;
  for (const name in headers) res.setHeader(name, headers[name]!);
  if (!res.hasHeader('Content-Length')) res.setHeader('Content-Length', payload ? payload.length : 0);
  if (req.method === 'HEAD' || payload === undefined) res.end();
  else res.end(payload);
}

export function sendJson(exchange: Pick<Exchange, 'req' | 'res'>, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(exchange, status, { 'Content-Type': 'application/json', ...headers }, JSON.stringify(value));
}

/** The request's Content-Length, or undefined when it has none (chunked or empty). */
export function contentLength(req: IncomingMessage): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** Whether the request carries a body at all. */
export function hasBody(req: IncomingMessage): boolean {
  const length = contentLength(req);
  if (length !== undefined) return length > 0;
  return req.headers['transfer-encoding'] !== undefined;
}
