import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type { Logger };

export interface LoggerOptions {
  level: LogLevel;
  /** `json`: one JSON object a line; `pretty`: coloured lines for people; `auto`: pretty on a terminal. */
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

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? process.stdout;
  const format = options.format ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && (destination as NodeJS.WriteStream).isTTY === true);
  const base = { level: options.level, base: { service: 'wharf' }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
  if (usePretty) {
    return pino(base, pretty({ destination: destination as NodeJS.WritableStream & { fd?: number }, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service,pid,hostname' }) as unknown as NodeJS.WritableStream);
  }
  if (destination === process.stdout) return pino(base, pino.destination({ fd: 1, sync: false }));
  return pino(base, destination);
}
