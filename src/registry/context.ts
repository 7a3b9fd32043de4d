/** Who is asking and how to stop: passed from the edge (HTTP, CLI) into the service layer. */
export interface RequestContext {
  /** Authenticated user or robot; absent when anonymous. */
  actor?: string;
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /**
   * Whether the caller may read a repository (the source of a cross-repository mount).
   * Absent when access control is off: then every repository is readable.
   */
  canRead?: (repository: string) => boolean;
  /** Which repositories the catalog shows the caller; absent: all of them. */
  canList?: (repository: string) => boolean;
}
