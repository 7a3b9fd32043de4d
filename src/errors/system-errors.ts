import { RegistryError } from './registry-error.js';

/** Error codes meaning the disk (or the database on it) has no room: Node's errno, SQLite's, PostgreSQL's disk_full. */
const FULL = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100']);

/**
 * Codes meaning the metadata database cannot take the request now but may soon: the PostgreSQL
 * store's own for a connection it cannot open or lost, and PostgreSQL's SQLSTATEs for a lost
 * connection (class 08), too many connections, a server shutting down or starting, a read-only
 * server, and conflicts still failing after the store's retries.
 */
const DATABASE_UNAVAILABLE = new Set([
  'DATABASE_UNAVAILABLE',
  '08000', '08001', '08003', '08004', '08006', '53300', '57P01', '57P02', '57P03', '25006', '40001', '40P01', '55P03',
]);

/**
 * The RegistryError a failure of the machine underneath stands for, when it is one a client can be
 * told about (a full disk is 507 STORAGE_FULL, as WebDAV and HTTP define it); undefined for
 * anything else, which stays an UNKNOWN 500.
 */
export function registryErrorForSystemError(error: unknown): RegistryError | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && FULL.has(code)) return new RegistryError('STORAGE_FULL', { cause: error });
  if (typeof code === 'string' && DATABASE_UNAVAILABLE.has(code)) {
    return new RegistryError('UNAVAILABLE', { message: 'the metadata database is unavailable; try again shortly', headers: { 'Retry-After': '1' }, cause: error });
  }
  return undefined;
}

/** Whether an error (or its cause) says the disk is full. */
export function isStorageFull(error: unknown): boolean {
  for (let current = error, depth = 0; current !== undefined && depth < 5; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (FULL.has(code) || code === 'STORAGE_FULL' || code === 'SQLITE_IOERR_SHMSIZE')) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
