/** Who is asking and how to stop: passed from the edge (HTTP, CLI) into the service layer. */
export interface RequestContext {
  /** Authenticated user or robot; absent when anonymous. */
  actor?: string;
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
}
