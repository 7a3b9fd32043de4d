import { isClientError } from '../client/client-error.js';
import { ReferenceError } from '../oci/reference.js';

/** Prints an error for a person (with a hint where one helps) and returns the exit code. */
export function reportError(error: unknown): number {
  if (isClientError(error)) {
    let message = `wharf: ${error.message}`;
    if (error.kind === 'unauthorized' && error.registry) message += `\nhint: run "wharf login ${error.registry}"`;
    process.stderr.write(`${message}\n`);
    return 1;
  }
  if (error instanceof ReferenceError) {
    process.stderr.write(`wharf: ${error.message}\n`);
    return 2;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`wharf: ${message}\n`);
  if (process.env.WHARF_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  return 1;
}
