import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { RegistryError, isRegistryError } from '../errors/index.js';

/**
 * The one seam where errors become HTTP: a RegistryError keeps its code, status and headers;
 * anything else is logged with its cause and answered as a bare UNKNOWN/500.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, error: unknown, log: Logger): void {
  let registryError: RegistryError;
  if (isRegistryError(error)) {
    registryError = error;
  } else if (req.destroyed || (error as NodeJS.ErrnoException)?.code === 'ECONNRESET' || (error as Error)?.name === 'AbortError') {
    // The client went away mid-request: nothing to answer.
    if (!res.destroyed) res.destroy();
    return;
  } else {
    log.error({ err: error, method: req.method, url: req.url }, 'unexpected error');
    registryError = new RegistryError('UNKNOWN');
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify(registryError.toJSON()));
  res.statusCode = registryError.status;
  if (registryError.headers) for (const [name, value] of Object.entries(registryError.headers)) res.setHeader(name, value);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', body.length);
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}
