import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { RegistryError, isRegistryError, registryErrorForSystemError } from '../errors/index.js';

/**
 * The one seam where errors become HTTP: a RegistryError keeps its code, status and headers; a
 * full disk is 507 STORAGE_FULL; anything else is an UNKNOWN/500. Every 5xx is logged with its
 * cause, which is never echoed to the client. Returns the OCI code answered (for the access
 * log); undefined when the client had gone.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, error: unknown, log: Logger, about: { requestId?: string } = {}): string | undefined {
  let registryError: RegistryError;
  if (isRegistryError(error)) {
    registryError = error;
  } else if (req.destroyed || (error as NodeJS.ErrnoException)?.code === 'ECONNRESET' || (error as Error)?.name === 'AbortError') {
    // The client went away mid-request: nothing to answer.
    if (!res.destroyed) res.destroy();
    return undefined;
  } else {
    registryError = registryErrorForSystemError(error) ?? new RegistryError('UNKNOWN', { cause: error });
  }
  if (registryError.status >= 500 && registryError.cause !== undefined) {
    log.error(
      { err: registryError.cause ?? registryError, code: registryError.code, method: req.method, url: req.url, ...about },
      registryError.code === 'UNKNOWN' ? 'unexpected error' : registryError.message,
    );
  }
  // A handler that failed half-way through a request body leaves the rest unread: discard it, so
  // the client (which reads the answer while it sends) gets the error and the connection stays in step.
  if (!req.complete && !req.destroyed) req.resume();
  if (res.headersSent) {
    res.destroy();
    return registryError.code;
  }
  const body = Buffer.from(JSON.stringify(registryError.toJSON()));
  res.statusCode = registryError.status;
  if (registryError.headers) for (const [name, value] of Object.entries(registryError.headers)) res.setHeader(name, value);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', body.length);
  if (req.method === 'HEAD') res.end();
  else res.end(body);
  return registryError.code;
}
