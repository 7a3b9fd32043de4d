import { pickChallenge, parseChallenges, type AuthChallenge } from './auth-challenge.js';
import { ClientError, networkFailure } from './client-error.js';
import { discard, header, readBody } from './http-message.js';
import { apiHostOf, hostnameOf, isLoopbackHost } from './registry-host.js';
import type { RoundTripper } from './round-tripper.js';

export interface PingOptions {
  /** Only this scheme (a registry named by URL, or `--plain-http` for 'http'); no fallback either way. */
  scheme?: 'https' | 'http';
  /** Allow falling back to plain HTTP for a host that is not loopback (`--insecure`). */
  insecure?: boolean;
}

/** Where a registry's API answers, and how it asked to be authenticated. */
export interface PingResult {
  /** The registry root, `https://host/` or `http://host/`. */
  base: URL;
  /** The challenge of a 401 to `GET /v2/`; undefined when the registry let us in. */
  challenge: AuthChallenge | undefined;
}

/**
 * Finds a registry's scheme by `GET /v2/` (go-containerregistry's ping): HTTPS first; plain HTTP
 * only for a loopback host or with `insecure`, and only when something answering like a registry
 * is there, so that a TLS port's "plain HTTP sent to HTTPS port" never hides the certificate error
 * the user needs to see. Throws ClientError('network' | 'tls') naming the HTTPS failure.
 * `transport` should be the plain HTTP layer: a ping is neither retried nor authenticated.
 */
export async function pingRegistry(transport: RoundTripper, registry: string, options: PingOptions = {}): Promise<PingResult> {
  const host = apiHostOf(registry);
  const https = new URL(`https://${host}/`);
  const http = new URL(`http://${host}/`);
  if (options.scheme) {
    const base = options.scheme === 'http' ? http : https;
    let answer: Awaited<ReturnType<typeof probe>>;
    try {
      answer = await probe(transport, base);
    } catch (error) {
      throw networkFailure(error, base, registry);
    }
    if (answer.speaksHttps) {
      throw new ClientError('tls', `${host} speaks HTTPS, not plain HTTP: drop --plain-http (or the http:// scheme); add --ca-cert FILE if its certificate is not trusted`, {
        status: 400,
        registry,
      });
    }
    return answer.result;
  }
  try {
    return (await probe(transport, https)).result;
  } catch (error) {
    const mayFallBack = options.insecure || isLoopbackHost(hostnameOf(host));
    if (!mayFallBack || error instanceof ClientError) throw networkFailure(error, https, registry);
    const plain = await probe(transport, http).catch(() => undefined);
    if (plain?.looksLikeRegistry) return plain.result;
    throw networkFailure(error, https, registry);
  }
}

/** What a TLS server written in Go (registry:2, Wharf too) answers to plain HTTP. */
const PLAIN_HTTP_TO_HTTPS = 'Client sent an HTTP request to an HTTPS server.';

/** One `GET /v2/`; rejects only on network failure. `speaksHttps`: plain HTTP reached a TLS port. */
async function probe(transport: RoundTripper, base: URL): Promise<{ result: PingResult; looksLikeRegistry: boolean; speaksHttps: boolean }> {
  const res = await transport.roundTrip({ method: 'GET', url: new URL('/v2/', base) });
  const status = res.statusCode ?? 0;
  let speaksHttps = false;
  if (status === 400 && base.protocol === 'http:') speaksHttps = (await readBody(res, 4096).catch(() => Buffer.alloc(0))).toString('latin1').includes(PLAIN_HTTP_TO_HTTPS);
  else discard(res);
  const value = status === 401 ? header(res, 'www-authenticate') : undefined;
  const challenge = value ? pickChallenge(parseChallenges(value)) : undefined;
  const looksLikeRegistry = status === 200 || status === 401 || header(res, 'docker-distribution-api-version') !== undefined;
  return { result: { base, challenge }, looksLikeRegistry, speaksHttps };
}
