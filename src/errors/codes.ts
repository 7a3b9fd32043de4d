/**
 * The error codes Wharf answers with, as data: one row per code with its HTTP status, default
 * message and where the code comes from — `spec` (OCI distribution-spec "Error Codes"),
 * `distribution` (CNCF Distribution's additions, which clients know) or `wharf` (our own, for
 * what neither names). Clients match on codes, so a code's spelling never changes.
 */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry', origin: 'spec' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid', origin: 'spec' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry', origin: 'spec' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content', origin: 'spec' },
  // 400, not 404: the manifest pushed is what is wrong (distribution-spec; Distribution answers the same).
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry', origin: 'spec' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid', origin: 'spec' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry', origin: 'spec' },
  NAME_INVALID: { status: 400, message: 'invalid repository name', origin: 'spec' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry', origin: 'spec' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length', origin: 'spec' },
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI', origin: 'distribution' },
  UNAUTHORIZED: { status: 401, message: 'authentication required', origin: 'spec' },
  DENIED: { status: 403, message: 'requested access to the resource is denied', origin: 'spec' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported', origin: 'spec' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests', origin: 'spec' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested', origin: 'distribution' },
  RANGE_INVALID: { status: 416, message: 'invalid content range', origin: 'distribution' },
  MANIFEST_TOO_LARGE: { status: 413, message: 'manifest exceeds the size limit', origin: 'distribution' },
  NOT_FOUND: { status: 404, message: 'no such endpoint', origin: 'wharf' },
  INVALID_REQUEST: { status: 400, message: 'the request body is not valid', origin: 'wharf' },
  PARAMETER_INVALID: { status: 400, message: 'a query parameter is not valid', origin: 'wharf' },
  REQUEST_TOO_LARGE: { status: 413, message: 'the request body is too large', origin: 'wharf' },
  CONFLICT: { status: 409, message: 'the name is already taken', origin: 'wharf' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed on this endpoint', origin: 'wharf' },
  UNAVAILABLE: { status: 503, message: 'service unavailable', origin: 'distribution' },
  STORAGE_FULL: { status: 507, message: 'the registry has no room left in its storage', origin: 'wharf' },
  UNKNOWN: { status: 500, message: 'unknown error', origin: 'distribution' },
} as const satisfies Record<string, { status: number; message: string; origin: 'spec' | 'distribution' | 'wharf' }>;

export type ErrorCode = keyof typeof ERROR_CODES;
