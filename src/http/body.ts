import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../errors/index.js';

/** Reads a small request body (a form or JSON document) of at most `limit` bytes. */
export async function readSmallBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw new RegistryError('REQUEST_TOO_LARGE', { headers: { Connection: 'close' } });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

/** A JSON body; an empty body is `{}`, malformed JSON is INVALID_REQUEST. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const text = await readSmallBody(req);
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new RegistryError('INVALID_REQUEST', { message: 'the body is not valid JSON' });
  }
}
