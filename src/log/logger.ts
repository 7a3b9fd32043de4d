import { pino, type Logger } from 'pino';
import { textStream } from './text-format.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type { Logger };

export interface LoggerOptions {
  level: LogLevel;
  /** `json`: one JSON object a line; `pretty`: text lines for people; `auto`: text on a terminal, else JSON. */
  format?: 'json' | 'pretty' | 'auto';
  /** Where lines go (default stdout). */
  destination?: NodeJS.WritableStream;
}

/** Headers and fields whose values never reach a log. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'password',
  'token',
  '*.password',
  '*.token',
];

/**
 * A logger whose JSON lines carry an ISO time and the level's name (`"level":"info"`), as log
 * collectors and registry:2 operators expect, rather than pino's epoch milliseconds and numbers.
 * Text lines are coloured only when they go to a terminal.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? process.stdout;
  const format = options.format ?? 'auto';
  const terminal = (destination as NodeJS.WriteStream).isTTY === true;
  const base = {
    level: options.level,
    base: { service: 'wharf' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (format === 'pretty' || (format === 'auto' && terminal)) return pino(base, textStream(destination, { colour: terminal }));
  if (destination === process.stdout) return pino(base, pino.destination({ fd: 1, sync: false }));
  return pino(base, destination);
}
