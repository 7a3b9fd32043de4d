import { RegistryError } from './registry-error.js';

/** Error codes meaning the disk (or the database on it) has no room: Node's errno and SQLite's. */
const FULL = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/**
 * The RegistryError a failure of the machine underneath stands for, when it is one a client can be
 * told about (a full disk is 507 STORAGE_FULL, as WebDAV and HTTP define it); undefined for
 * anything else, which stays an UNKNOWN 500.
 */
export function registryErrorForSystemError(error: unknown): RegistryError | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && FULL.has(code)) return new RegistryError('STORAGE_FULL', { cause: error });
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
