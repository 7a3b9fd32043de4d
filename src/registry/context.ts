import type { ChangeOptions, ChangeRequest } from '../metadata/metadata-store.js';

/** Who is asking and how to stop: passed from the edge (HTTP, CLI) into the service layer. */
export interface RequestContext {
  /** Authenticated user or robot; absent when anonymous. */
  actor?: string;
  /** The HTTP request, as notifications report it; absent outside HTTP. */
  request?: ChangeRequest;
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /**
   * Whether the caller may read a repository (the source of a cross-repository mount).
   * Absent when access control is off: then every repository is readable.
   */
  canRead?: (repository: string) => boolean;
  /** Which repositories the catalog shows the caller; absent: all of them. */
  canList?: (repository: string) => boolean;
  /**
   * Adds a header to the answer (a wrapper saying how it answered, such as the pull-through
   * cache's status); absent outside HTTP.
   */
  setResponseHeader?: (name: string, value: string) => void;
}

/** What a metadata write records of who asked and through which request. */
export function changeOptions(context: RequestContext): ChangeOptions {
  return { ...(context.actor !== undefined ? { actor: context.actor } : {}), ...(context.request !== undefined ? { request: context.request } : {}) };
}
