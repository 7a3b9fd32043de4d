import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

/**
 * A request as it travels down the transport layers. Each layer reads the fields it cares about
 * and passes the rest on untouched, as Go's RoundTrippers share one `http.Request`.
 */
export interface RegistryRequest {
  method: string;
  url: URL;
  headers?: OutgoingHttpHeaders;
  /**
   * A Buffer, or a function that opens the body afresh. Layers that send a request again (a retry,
   * a second try after an auth challenge) call the function once per attempt.
   */
  body?: Buffer | (() => Readable);
  /** Token scopes this request needs (`repository:NAME:pull,push`); read by the auth layer. */
  scopes?: string[];
  /** Follow 3xx answers (blob GETs that object storage serves); other requests get the 3xx back. */
  followRedirects?: boolean;
  /** False for requests that must not be repeated blindly (a streamed upload): sent exactly once. */
  retry?: boolean;
  /**
   * False when no credentials may go with this request: set by the redirect layer once a redirect
   * has left the origin the request was made to. Absent means the auth layer decides.
   */
  credentials?: boolean;
  signal?: AbortSignal;
}

/**
 * One layer of the client's transport stack (go-containerregistry's `http.RoundTripper`).
 *
 * Contract: resolves with the response whatever its status, so that the layer above decides what
 * a 404 or a 500 means; rejects only when no response came (network failure, TLS refusal, or a
 * ClientError a layer raises, such as refusing to send credentials). A caller that does not read
 * the body must `discard()` it so that the connection returns to the pool.
 */
export interface RoundTripper {
  roundTrip(request: RegistryRequest): Promise<IncomingMessage>;
}
