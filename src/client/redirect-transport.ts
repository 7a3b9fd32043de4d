import type { IncomingMessage } from 'node:http';
import { ClientError } from './client-error.js';
import { discard, header } from './http-message.js';
import type { RegistryRequest, RoundTripper } from './round-tripper.js';

/** Redirects one request may follow before it is taken for a loop. */
const MAX_REDIRECTS = 5;

/**
 * Follows 3xx answers for requests that ask for it (`followRedirects`: blob GETs and HEADs, which
 * registries backed by object storage answer with a 307 to a signed URL). Once a hop leaves the
 * origin the request was made to, the rest of the chain goes with `credentials: false`, so the
 * auth layer below never hands the registry's credentials to the storage host.
 * Other requests get their 3xx back untouched. Throws ClientError('http') past 5 hops or on a
 * redirect without a Location.
 */
export class RedirectTransport implements RoundTripper {
  constructor(private readonly inner: RoundTripper) {}

  async roundTrip(request: RegistryRequest): Promise<IncomingMessage> {
    if (!request.followRedirects) return this.inner.roundTrip(request);
    const origin = request.url.origin;
    let hop = request;
    for (let redirects = 0; ; redirects++) {
      const res = await this.inner.roundTrip(hop);
      const status = res.statusCode ?? 0;
      if (status < 300 || status >= 400 || status === 304) return res;
      const location = header(res, 'location');
      discard(res);
      if (!location || redirects >= MAX_REDIRECTS) {
        throw new ClientError('http', `too many or bad redirects from ${hop.url.host}`, { registry: request.url.host });
      }
      const next = new URL(location, hop.url);
      // Once off the origin, stay without credentials even if a later hop comes back to it.
      const credentials = hop.credentials !== false && next.origin === origin;
      hop = { ...hop, url: next, ...(credentials ? {} : { credentials: false }) };
    }
  }
}
