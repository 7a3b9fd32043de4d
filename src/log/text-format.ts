/**
 * Wharf's text log lines, for people: `TIME LEVEL message key=value ...`, one line per record,
 * with the level coloured only on a terminal. Records arrive as pino's JSON lines.
 */

const LEVEL_COLOURS: Record<string, string> = { fatal: '35', error: '31', warn: '33', info: '32', debug: '36', trace: '90' };
/** Fields every record has, or that the line shows in its own place. */
const SHOWN_ELSEWHERE = new Set(['time', 'level', 'msg', 'service', 'pid', 'hostname']);

export interface TextFormatOptions {
  colour: boolean;
}

/** One record (pino's JSON object) as one text line, without the newline. */
export function formatRecord(record: Record<string, unknown>, options: TextFormatOptions): string {
  const level = String(record.level ?? 'info');
  const label = level.toUpperCase().padEnd(5);
  const parts = [String(record.time ?? new Date().toISOString()), options.colour ? `\u001b[${LEVEL_COLOURS[level] ?? '0'}m${label}\u001b[0m` : label];
  if (record.msg !== undefined) parts.push(String(record.msg));
  for (const [key, value] of Object.entries(record)) {
    if (SHOWN_ELSEWHERE.has(key) || value === undefined) continue;
    parts.push(`${key}=${formatValue(key, value)}`);
  }
  // An unexpected error keeps its stack, indented below its line, for the bug report.
  const stack = (record.err as { stack?: unknown } | undefined)?.stack;
  if ((level === 'error' || level === 'fatal') && typeof stack === 'string') return `${parts.join(' ')}\n${stack.replace(/^/gm, '    ')}`;
  return parts.join(' ');
}

function formatValue(key: string, value: unknown): string {
  // An error shows its message here; its stack follows the line at error and fatal levels.
  if (key === 'err' && value !== null && typeof value === 'object') {
    const err = value as { message?: unknown; code?: unknown };
    return JSON.stringify(err.code !== undefined ? `${String(err.message)} (${String(err.code)})` : String(err.message));
  }
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value);
}

/**
 * A pino destination that turns its JSON lines into text lines on `destination`. Lines that are
 * not JSON (never expected) pass through unchanged.
 */
export function textStream(destination: NodeJS.WritableStream, options: TextFormatOptions): { write(chunk: string): boolean } {
  return {
    write(chunk: string): boolean {
      let out = '';
      for (const line of chunk.split('\n')) {
        if (line === '') continue;
        try {
          out += `${formatRecord(JSON.parse(line) as Record<string, unknown>, options)}\n`;
        } catch {
          out += `${line}\n`;
        }
      }
      return destination.write(out);
    },
  };
}
