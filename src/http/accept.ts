import { bareMediaType } from '../oci/media-types.js';

/** Splits Accept headers into bare media types. */
export function parseAccept(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: string[] = [];
  for (const value of values) for (const item of value.split(',')) {
    const type = bareMediaType(item);
    if (type) out.push(type);
  }
  return out;
}
