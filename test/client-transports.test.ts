import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { AuthTransport } from '../src/client/auth-transport.js';
import { ClientError } from '../src/client/client-error.js';
import { discard, readBody } from '../src/client/http-message.js';
import { HttpTransport } from '../src/client/http-transport.js';
import { pingRegistry } from '../src/client/ping.js';
import { RedirectTransport } from '../src/client/redirect-transport.js';
import { RegistryClient } from '../src/client/registry-client.js';
import { RegistryTransport } from '../src/client/registry-transport.js';
import { RetryTransport } from '../src/client/retry-transport.js';
import type { RegistryRequest, RoundTripper } from '../src/client/round-tripper.js';
import { LOOPBACK_CERT, sendJson, startLoopbackServer, type LoopbackServer, type SeenRequest } from './support/loopback-server.js';

/**
 * The client's transport layers one at a time, against small HTTP servers in this process:
 * ping (scheme detection), the auth challenge and token dance, retries and redirects, and the
 * paged API calls on top. Real registries and real clients are in the cli-* scenario files.
 */

const servers: LoopbackServer[] = [];
const closers: Array<{ close(): void }> = [];
after(async () => {
  for (const c of closers) c.close();
  for (const s of servers) await s.close();
});

async function serve(handler: Parameters<typeof startLoopbackServer>[0], options: { tls?: boolean } = {}): Promise<LoopbackServer> {
  const server = await startLoopbackServer(handler, options);
  servers.push(server);
  return server;
}

function http(options: ConstructorParameters<typeof HttpTransport>[0] = {}): HttpTransport {
  const transport = new HttpTransport(options);
  closers.push(transport);
  return transport;
}

function stack(options: ConstructorParameters<typeof RegistryTransport>[0]): RegistryTransport {
  const transport = new RegistryTransport({ retryBaseMs: 10, ...options });
  closers.push(transport);
  return transport;
}

async function text(res: IncomingMessage): Promise<string> {
  return (await readBody(res)).toString('utf8');
}

const v2 = (r: SeenRequest) => r.url === '/v2/';
const notPing = (requests: SeenRequest[]) => requests.filter((r) => !v2(r));

/** A RoundTripper that answers from a function and records what it was asked (no sockets at all). */
function stub(answer: (req: RegistryRequest) => Promise<IncomingMessage> | IncomingMessage): RoundTripper & { seen: RegistryRequest[] } {
  const seen: RegistryRequest[] = [];
  return {
    seen,
    roundTrip: async (req) => {
      seen.push(req);
      return answer(req);
    },
  };
}

/** A bare response object for stubs. */
function response(status: number, headers: Record<string, string> = {}): IncomingMessage {
  const res = Readable.from([]) as unknown as IncomingMessage;
  Object.assign(res, { statusCode: status, headers });
  return res;
}

describe('ping: finding the scheme', () => {
  test('a loopback registry on plain HTTP is found after HTTPS fails, with its challenge', async () => {
    const server = await serve((_req, res) => sendJson(res, 401, { errors: [] }, { 'www-authenticate': 'Basic realm="r"', 'docker-distribution-api-version': 'registry/2.0' }));
    const ping = await pingRegistry(http(), server.host);
    assert.equal(ping.base.href, `http://${server.host}/`);
    assert.deepEqual(ping.challenge, { scheme: 'basic', params: { realm: 'r' } });
  });

  test('a bearer challenge is preferred over basic when both are offered', async () => {
    const server = await serve((_req, res) => sendJson(res, 401, {}, { 'www-authenticate': 'Basic realm="b", Bearer realm="http://x/token",service="s"' }));
    const ping = await pingRegistry(http(), server.host, { scheme: 'http' });
    assert.equal(ping.challenge?.scheme, 'bearer');
    assert.equal(ping.challenge?.params.service, 's');
  });

  test('HTTPS with a trusted CA; an untrusted certificate is a tls error, not masked by a fallback to HTTP', async () => {
    const server = await serve((_req, res) => sendJson(res, 200, {}), { tls: true });
    const trusted = await pingRegistry(http({ tls: { caCerts: [LOOPBACK_CERT] } }), server.host);
    assert.equal(trusted.base.href, `https://${server.host}/`);
    assert.equal(trusted.challenge, undefined);
    await assert.rejects(pingRegistry(http(), server.host), (error: ClientError) => {
      assert.equal(error.kind, 'tls');
      assert.match(error.message, /cannot reach 127\.0\.0\.1:\d+: .*--ca-cert/);
      return true;
    });
    const skipped = await pingRegistry(http({ tls: { skipVerify: true } }), server.host, { insecure: true });
    assert.equal(skipped.base.protocol, 'https:');
  });

  test('no fallback onto a TLS port: a 400 "HTTP sent to HTTPS port" does not count as a registry', async () => {
    const transport = stub((req) => {
      if (req.url.protocol === 'https:') throw Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
      return response(400);
    });
    await assert.rejects(pingRegistry(transport, '127.0.0.1:5000'), { kind: 'tls' });
    assert.deepEqual(transport.seen.map((r) => r.url.href), ['https://127.0.0.1:5000/v2/', 'http://127.0.0.1:5000/v2/']);
  });

  test('a host that is not loopback gets HTTPS only, unless insecure; a scheme given is the only one tried', async () => {
    const refuse = () => stub((req) => {
      if (req.url.protocol === 'https:') throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      return response(200);
    });
    const strict = refuse();
    await assert.rejects(pingRegistry(strict, 'registry.example:5000'), { kind: 'network', message: /cannot reach registry\.example:5000/ });
    assert.equal(strict.seen.length, 1);
    const insecure = refuse();
    assert.equal((await pingRegistry(insecure, 'registry.example:5000', { insecure: true })).base.href, 'http://registry.example:5000/');
    const httpsOnly = refuse();
    await assert.rejects(pingRegistry(httpsOnly, '127.0.0.1:5000', { scheme: 'https' }), { kind: 'network' });
    assert.equal(httpsOnly.seen.length, 1, 'no fallback for a registry named by an https:// URL, even on loopback');
    const plain = refuse();
    assert.equal((await pingRegistry(plain, 'registry.example:5000', { scheme: 'http' })).base.protocol, 'http:');
    assert.deepEqual(plain.seen.map((r) => r.url.protocol), ['http:']);
  });

  test('docker.io is pinged at registry-1.docker.io', async () => {
    const transport = stub(() => response(200));
    assert.equal((await pingRegistry(transport, 'docker.io')).base.href, 'https://registry-1.docker.io/');
  });
});

describe('auth: the challenge and the token dance', () => {
  test('Basic: sent after the challenge, credentials looked up once; a refused password is answered once, then the 401 stands', async () => {
    const server = await serve((req, res) => {
      const ok = req.headers.authorization === `Basic ${Buffer.from('me:right').toString('base64')}`;
      if (ok) sendJson(res, 200, {});
      else sendJson(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': 'Basic realm="r"' });
    });
    let lookups = 0;
    const transport = stack({ registry: server.host, scheme: 'http', credentials: async () => (lookups++, { username: 'me', password: 'right' }) });
    for (let i = 0; i < 2; i++) discard(await transport.roundTrip({ method: 'GET', url: await transport.resolve('/v2/a/tags/list') }));
    assert.equal(lookups, 1);
    assert.deepEqual(notPing(server.requests).map((r) => r.headers.authorization?.slice(0, 6)), ['Basic ', 'Basic ']);

    const wrong = stack({ registry: server.host, scheme: 'http', credentials: { username: 'me', password: 'wrong' } });
    const before = server.requests.length;
    const res = await wrong.roundTrip({ method: 'GET', url: await wrong.resolve('/v2/a/tags/list') });
    assert.equal(res.statusCode, 401);
    discard(res);
    assert.equal(notPing(server.requests.slice(before)).length, 1, 'Basic already sent: nothing new to try');
  });

  test('Bearer: a token per scope set, cached, and one token request shared by concurrent requests', async () => {
    let issued = 0;
    const server = await serve((req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname === '/token') {
        issued++;
        sendJson(res, 200, { token: `t${issued}:${url.searchParams.getAll('scope').join(' ')}`, expires_in: 300 });
        return;
      }
      if (req.headers.authorization?.startsWith('Bearer ')) return sendJson(res, 200, { tags: [] });
      const realm = `http://${req.headers.host}/token`;
      sendJson(res, 401, {}, { 'www-authenticate': `Bearer realm="${realm}",service="svc"` });
    });
    const transport = stack({ registry: server.host, scheme: 'http', credentials: { username: 'u', password: 'p' } });
    const url = await transport.resolve('/v2/a/tags/list');
    const pull = ['repository:a:pull'];
    const results = await Promise.all(Array.from({ length: 5 }, () => transport.roundTrip({ method: 'GET', url, scopes: pull })));
    for (const res of results) {
      assert.equal(res.statusCode, 200);
      discard(res);
    }
    assert.equal(issued, 1, 'five parallel requests, one token request');
    discard(await transport.roundTrip({ method: 'GET', url, scopes: pull }));
    assert.equal(issued, 1, 'the cached token is reused');
    discard(await transport.roundTrip({ method: 'GET', url, scopes: ['repository:a:push', 'repository:a:pull'] }));
    assert.equal(issued, 2, 'another scope set, another token');
    const tokenRequests = server.requests.filter((r) => r.url.startsWith('/token'));
    const last = new URL(tokenRequests.at(-1)!.url, 'http://x');
    assert.deepEqual(last.searchParams.getAll('scope'), ['repository:a:pull,push']);
    assert.equal(last.searchParams.get('service'), 'svc');
    assert.equal(last.searchParams.get('account'), 'u');
    assert.equal(tokenRequests.at(-1)!.headers.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
    assert.match(server.requests.at(-1)!.headers.authorization ?? '', /^Bearer t2:/);
  });

  test('a 401 with a new scope in its challenge gets a fresh token once', async () => {
    let issued = 0;
    const server = await serve((req, res) => {
      const url = new URL(req.url, 'http://x');
      const realm = `http://${req.headers.host}/token`;
      if (url.pathname === '/token') return sendJson(res, 200, { access_token: `t${++issued}:${url.searchParams.getAll('scope').join(' ')}` });
      if ((req.headers.authorization ?? '').includes('registry:catalog:*')) return sendJson(res, 200, { repositories: [] });
      sendJson(res, 401, {}, { 'www-authenticate': `Bearer realm="${realm}",service="svc",scope="registry:catalog:*",error="insufficient_scope"` });
    });
    const transport = stack({ registry: server.host, scheme: 'http' });
    const res = await transport.roundTrip({ method: 'GET', url: await transport.resolve('/v2/_catalog') });
    assert.equal(res.statusCode, 200);
    discard(res);
    assert.equal(issued, 1, 'the ping had no scope; the 401 named it; one token covers it');
  });

  test('an identity token is traded with the OAuth2 refresh grant; a login asks for an offline token and keeps the refresh token', async () => {
    const server = await serve((req, res) => {
      const url = new URL(req.url, 'http://x');
      const realm = `http://${req.headers.host}/token`;
      if (url.pathname === '/token') {
        if (req.method === 'POST') return sendJson(res, 200, { access_token: 'from-refresh' });
        return sendJson(res, 200, { token: 'from-password', ...(url.searchParams.get('offline_token') === 'true' ? { refresh_token: 'rt-1' } : {}) });
      }
      if (req.headers.authorization?.startsWith('Bearer ')) return sendJson(res, 200, {});
      sendJson(res, 401, {}, { 'www-authenticate': `Bearer realm="${realm}",service="svc"` });
    });
    const refresh = stack({ registry: server.host, scheme: 'http', credentials: { username: 'u', identityToken: 'idt' } });
    discard(await refresh.roundTrip({ method: 'GET', url: await refresh.resolve('/v2/a/manifests/v1'), scopes: ['repository:a:pull'] }));
    const post = server.requests.find((r) => r.method === 'POST')!;
    const form = new URLSearchParams(post.body.toString());
    assert.deepEqual(Object.fromEntries(form), { grant_type: 'refresh_token', refresh_token: 'idt', client_id: 'wharf', service: 'svc', scope: 'repository:a:pull' });
    assert.equal(post.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(server.requests.at(-1)!.headers.authorization, 'Bearer from-refresh');

    const client = new RegistryClient({ registry: server.host, scheme: 'http', credentials: { username: 'u', password: 'p' } });
    closers.push(client);
    assert.deepEqual(await client.verifyLogin(), { identityToken: 'rt-1' });
    const login = new URL(server.requests.filter((r) => r.url.startsWith('/token?')).at(-1)!.url, 'http://x');
    assert.equal(login.searchParams.get('offline_token'), 'true');
    assert.equal(login.searchParams.get('client_id'), 'wharf');
  });

  test('a refusing token server is an unauthorized ClientError', async () => {
    const server = await serve((req, res) => {
      if (req.url.startsWith('/token')) return sendJson(res, 401, { details: 'no' });
      sendJson(res, 401, {}, { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="svc"` });
    });
    const transport = stack({ registry: server.host, scheme: 'http', credentials: { username: 'u', password: 'bad' } });
    await assert.rejects(transport.roundTrip({ method: 'GET', url: await transport.resolve('/v2/a/tags/list') }), {
      kind: 'unauthorized',
      message: /the token server refused the credentials \(401\)/,
    });
  });

  test('credentials never go over plain HTTP to a host that is not loopback, nor with a request marked credentials: false', async () => {
    const inner = stub(() => response(200));
    const auth = new AuthTransport(inner, { registry: 'registry.example', tokenTransport: inner, credentials: { username: 'u', password: 'p' } });
    auth.challenge = { scheme: 'basic', params: {} };
    await assert.rejects(auth.roundTrip({ method: 'GET', url: new URL('http://registry.example/v2/') }), {
      kind: 'insecure-credentials',
      message: /refusing to send credentials to registry\.example over plain HTTP/,
    });
    await auth.roundTrip({ method: 'GET', url: new URL('https://registry.example/v2/') });
    await auth.roundTrip({ method: 'GET', url: new URL('http://127.0.0.1:5000/v2/') });
    await auth.roundTrip({ method: 'GET', url: new URL('https://storage.example/blob'), credentials: false });
    assert.deepEqual(inner.seen.map((r) => r.headers?.authorization !== undefined), [true, true, false]);

    auth.challenge = { scheme: 'bearer', params: { realm: 'http://auth.example/token' } };
    await assert.rejects(auth.roundTrip({ method: 'GET', url: new URL('https://registry.example/v2/') }), { kind: 'insecure-credentials', message: /auth\.example/ });
  });

  test('a credential lookup that fails is tried again on the next request', async () => {
    const inner = stub(() => response(200));
    let lookups = 0;
    const credentials = async () => {
      if (++lookups === 1) throw new Error('credential helper docker-credential-x get: no keychain');
      return { username: 'u', password: 'p' };
    };
    const auth = new AuthTransport(inner, { registry: '127.0.0.1:5000', tokenTransport: inner, credentials });
    auth.challenge = { scheme: 'basic', params: {} };
    await assert.rejects(auth.roundTrip({ method: 'GET', url: new URL('http://127.0.0.1:5000/v2/') }), /no keychain/);
    await auth.roundTrip({ method: 'GET', url: new URL('http://127.0.0.1:5000/v2/') });
    await auth.roundTrip({ method: 'GET', url: new URL('http://127.0.0.1:5000/v2/') });
    assert.equal(lookups, 2, 'looked up again after the failure, then remembered');
    assert.equal(inner.seen.length, 2);
  });

  test('preemptive Basic (the admin API): credentials on the first request, and no challenge followed', async () => {
    const inner = stub(() => response(401, { 'www-authenticate': 'Bearer realm="http://127.0.0.1:1/token"' }));
    const auth = new AuthTransport(inner, { registry: '127.0.0.1:5000', tokenTransport: inner, credentials: { username: 'root', password: 'pw' }, preemptiveBasic: true });
    const res = await auth.roundTrip({ method: 'GET', url: new URL('http://127.0.0.1:5000/admin/v1/users') });
    assert.equal(res.statusCode, 401);
    assert.equal(inner.seen.length, 1);
    assert.equal(inner.seen[0]!.headers?.authorization, `Basic ${Buffer.from('root:pw').toString('base64')}`);
  });
});

describe('retries', () => {
  test('503 and 429 are retried, Retry-After honoured; the last answer stands after maxRetries', async () => {
    let calls = 0;
    const server = await serve((_req, res) => {
      calls++;
      if (calls === 1) return sendJson(res, 503, {});
      if (calls === 2) return sendJson(res, 429, {}, { 'retry-after': '1' });
      sendJson(res, 200, { ok: true });
    });
    const retry = new RetryTransport(http(), { baseDelayMs: 10 });
    const started = Date.now();
    const res = await retry.roundTrip({ method: 'GET', url: new URL(`${server.url}/v2/`) });
    assert.equal(res.statusCode, 200);
    assert.equal(await text(res), '{"ok":true}');
    assert.equal(calls, 3);
    assert.ok(Date.now() - started >= 1000, 'Retry-After: 1 was waited for');

    const failing = await serve((_req, res) => sendJson(res, 500, {}));
    const giveUp = new RetryTransport(http(), { maxRetries: 2, baseDelayMs: 5 });
    const last = await giveUp.roundTrip({ method: 'GET', url: new URL(`${failing.url}/x`) });
    assert.equal(last.statusCode, 500);
    discard(last);
    assert.equal(failing.requests.length, 3);
  });

  test('retry: false sends once; 4xx are never retried', async () => {
    const server = await serve((req, res) => sendJson(res, req.url === '/bad' ? 400 : 503, {}));
    const retry = new RetryTransport(http(), { baseDelayMs: 5 });
    discard(await retry.roundTrip({ method: 'PUT', url: new URL(`${server.url}/put`), body: Buffer.from('x'), retry: false }));
    discard(await retry.roundTrip({ method: 'GET', url: new URL(`${server.url}/bad`) }));
    assert.equal(server.requests.length, 2);
  });

  test('a dropped connection is retried with the body opened afresh; a silent one is cut after the idle timeout', async () => {
    let calls = 0;
    const server = await serve((req, res, raw) => {
      calls++;
      if (calls === 1) return raw.socket.destroy();
      if (calls === 2) {
        res.writeHead(200, { 'content-length': '10' });
        res.write('12345'); // then silence
        return;
      }
      res.writeHead(200).end(req.body);
    });
    let opens = 0;
    const retry = new RetryTransport(http({ idleTimeoutMs: 300 }), { baseDelayMs: 5 });
    const body = () => (opens++, Readable.from([Buffer.from('payload')]));
    const res = await retry.roundTrip({ method: 'POST', url: new URL(`${server.url}/echo`), body });
    // The second answer's headers arrived before it went silent: the caller sees the cut while reading.
    await assert.rejects(text(res), /aborted|ETIMEDOUT|no data/);
    const again = await retry.roundTrip({ method: 'POST', url: new URL(`${server.url}/echo`), body });
    assert.equal(await text(again), 'payload');
    assert.equal(opens, 3, 'one body per attempt');
    assert.ok(server.requests.every((r) => r.body.toString() === 'payload'));
  });
});

describe('redirects', () => {
  test('followed only when asked; credentials stay on the origin; a loop ends in an error', async () => {
    const storage = await serve((_req, res) => res.writeHead(200).end('blob bytes'));
    const registry = await serve((req, res) => {
      if (req.url === '/v2/a/blobs/same') return res.writeHead(307, { location: '/v2/a/blobs/moved' }).end();
      if (req.url === '/v2/a/blobs/moved') return res.writeHead(307, { location: `${storage.url}/bucket/blob` }).end();
      if (req.url === '/v2/loop') return res.writeHead(302, { location: '/v2/loop' }).end();
      res.writeHead(404).end();
    });
    const inner = new AuthTransport(http(), { registry: registry.host, tokenTransport: http(), credentials: { username: 'u', password: 'p' }, preemptiveBasic: true });
    const redirect = new RedirectTransport(inner);
    const notFollowed = await redirect.roundTrip({ method: 'GET', url: new URL(`${registry.url}/v2/a/blobs/same`) });
    assert.equal(notFollowed.statusCode, 307);
    discard(notFollowed);
    const res = await redirect.roundTrip({ method: 'GET', url: new URL(`${registry.url}/v2/a/blobs/same`), followRedirects: true });
    assert.equal(await text(res), 'blob bytes');
    assert.deepEqual(registry.requests.slice(1).map((r) => [r.url, r.headers.authorization !== undefined]), [
      ['/v2/a/blobs/same', true],
      ['/v2/a/blobs/moved', true],
    ]);
    assert.equal(storage.requests.length, 1);
    assert.equal(storage.requests[0]!.headers.authorization, undefined, 'no credentials to another host');
    await assert.rejects(redirect.roundTrip({ method: 'GET', url: new URL(`${registry.url}/v2/loop`), followRedirects: true }), {
      kind: 'http',
      message: /too many or bad redirects/,
    });
  });
});

describe('the API on top', () => {
  test('tags and the catalog page through Link headers as async iteration', async () => {
    const server = await serve((req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname === '/v2/') return sendJson(res, 200, {});
      const last = url.searchParams.get('last');
      const pages: Record<string, [string[], string | undefined]> = {
        '': [['a', 'b'], '/v2/app/tags/list?n=2&last=b'],
        b: [['c', 'd'], '/v2/app/tags/list?n=2&last=d'],
        d: [['e'], undefined],
      };
      const [tags, next] = pages[last ?? '']!;
      sendJson(res, 200, { name: 'app', tags }, next ? { link: `<${next}>; rel="next"` } : {});
    });
    const client = new RegistryClient({ registry: server.host, scheme: 'http' });
    closers.push(client);
    const seen: string[] = [];
    for await (const tag of client.tags('app', { pageSize: 2 })) seen.push(tag);
    assert.deepEqual(seen, ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(notPing(server.requests).map((r) => r.url), ['/v2/app/tags/list?n=2', '/v2/app/tags/list?n=2&last=b', '/v2/app/tags/list?n=2&last=d']);
  });

  test('referrers: the API with or without server-side filtering, else the fallback tag, else nothing', async () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const sbom = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 1, artifactType: 'application/spdx+json' };
    const sig = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 1, artifactType: 'application/vnd.dev.sigstore' };
    const index = (manifests: unknown[]) => ({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
    const withApi = await serve((req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname === '/v2/') return sendJson(res, 200, {});
      if (url.pathname === `/v2/filtered/referrers/${digest}`) return sendJson(res, 200, index([sbom]), { 'oci-filters-applied': 'artifactType' });
      sendJson(res, 200, index([sbom, sig]));
    });
    const client = new RegistryClient({ registry: withApi.host, scheme: 'http' });
    closers.push(client);
    const collect = async (it: AsyncIterable<{ digest: string }>) => {
      const out: string[] = [];
      for await (const d of it) out.push(d.digest);
      return out;
    };
    assert.deepEqual(await collect(client.referrers('app', digest)), [sbom.digest, sig.digest]);
    assert.deepEqual(await collect(client.referrers('app', digest, { artifactType: 'application/vnd.dev.sigstore' })), [sig.digest], 'filtered here when the registry did not');
    assert.deepEqual(await collect(client.referrers('filtered', digest, { artifactType: 'application/spdx+json' })), [sbom.digest]);
    assert.match(withApi.requests.find((r) => r.url.includes('/filtered/'))!.url, /\?artifactType=application%2Fspdx%2Bjson$/);

    const withoutApi = await serve((req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname === '/v2/') return sendJson(res, 200, {});
      if (url.pathname === `/v2/tagged/manifests/sha256-${'a'.repeat(64)}`) return sendJson(res, 200, index([sbom, sig]), { 'content-type': 'application/vnd.oci.image.index.v1+json' });
      sendJson(res, 404, { errors: [{ code: url.pathname.includes('/manifests/') ? 'MANIFEST_UNKNOWN' : 'NOT_FOUND' }] });
    });
    const old = new RegistryClient({ registry: withoutApi.host, scheme: 'http' });
    closers.push(old);
    assert.deepEqual(await collect(old.referrers('tagged', digest, { artifactType: 'application/spdx+json' })), [sbom.digest]);
    assert.deepEqual(await collect(old.referrers('untagged', digest)), []);
  });
});
