import type { IncomingMessage } from 'node:http';

/** Reads a whole (small) response body: manifests, JSON documents, error bodies. Throws past `limit`. */
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

/** One response header as a string (repeated headers joined with `, `); undefined when absent. */
export function header(res: IncomingMessage, name: string): string | undefined {
  const value = res.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}
