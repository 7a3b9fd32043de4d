import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import type { SecureVersion, TLSSocket } from 'node:tls';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { makeCertificates, signed, type TestCertificates } from './support/auth-fixtures.js';
import { cliUser } from './support/cli.js';
import { startReferenceRegistry } from './support/reference-registry.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

interface TlsResponse {
  status: number;
  serial: string;
  protocol: string | null;
  reused: boolean;
}

function get(
  wharf: WharfProcess,
  options: { ca?: Buffer; agent?: Agent; cert?: Buffer; key?: Buffer; maxVersion?: SecureVersion; minVersion?: SecureVersion; ciphers?: string } = {},
): Promise<TlsResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: wharf.port, path: '/v2/', method: 'GET', ...options },
      (res) => {
        const socket = res.socket as TLSSocket;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, serial: socket.getPeerCertificate().serialNumber, protocol: socket.getProtocol(), reused: req.reusedSocket }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const cleanup: Array<() => unknown> = [];
after(async () => {
  for (const step of cleanup) await step();
});

async function serve(certs: TestCertificates, env: Record<string, string> = {}): Promise<WharfProcess> {
  const wharf = await startWharf({ tls: true, env: { REGISTRY_HTTP_TLS_CERTIFICATE: join(certs.dir, 'chain.pem'), REGISTRY_HTTP_TLS_KEY: certs.serverKey, ...env } });
  cleanup.unshift(() => wharf.dispose());
  return wharf;
}

function certificates(): TestCertificates {
  const certs = makeCertificates();
  // The certificate file carries the chain: leaf first, then the CA, as registry:2 takes it.
  writeFileSync(join(certs.dir, 'chain.pem'), readFileSync(certs.serverCert, 'utf8') + readFileSync(certs.caCert, 'utf8'));
  cleanup.push(() => rmSync(certs.dir, { recursive: true, force: true }));
  return certs;
}

describe('TLS', () => {
  test('serves HTTPS from PEM files with the chain; an untrusting client refuses it', async () => {
    const certs = certificates();
    const wharf = await serve(certs);
    assert.match(wharf.output(), /"tls":true/);
    const res = await get(wharf, { ca: readFileSync(certs.caCert) });
    assert.equal(res.status, 200);
    await assert.rejects(get(wharf), /self.signed|unable to verify|certificate/i);
  });

  test('minimumtls defaults to TLS 1.2 and can require 1.3', async () => {
    const certs = certificates();
    const ca = readFileSync(certs.caCert);
    const defaults = await serve(certs);
    assert.equal((await get(defaults, { ca, maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
    const strict = await serve(certs, { REGISTRY_HTTP_TLS_MINIMUMTLS: 'tls1.3' });
    await assert.rejects(get(strict, { ca, maxVersion: 'TLSv1.2' }), /protocol|version|alert/i);
    assert.equal((await get(strict, { ca })).protocol, 'TLSv1.3');
  });

  test('clientcas requires a client certificate signed by one of them (mutual TLS)', async () => {
    const certs = certificates();
    const ca = readFileSync(certs.caCert);
    const wharf = await serve(certs, { REGISTRY_HTTP_TLS_CLIENTCAS: certs.caCert });
    await assert.rejects(get(wharf, { ca }), /certificate|socket hang up|ECONNRESET|alert/i);
    const other = certificates();
    await assert.rejects(get(wharf, { ca, cert: readFileSync(other.clientCert), key: readFileSync(other.clientKey) }), /certificate|ECONNRESET|alert|hang up/i);
    const ok = await get(wharf, { ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) });
    assert.equal(ok.status, 200);
  });

  test('verify-client-cert-if-given serves clients without a certificate or with a trusted one, and refuses an untrusted one', async () => {
    const certs = certificates();
    const ca = readFileSync(certs.caCert);
    const wharf = await serve(certs, { REGISTRY_HTTP_TLS_CLIENTCAS: certs.caCert, REGISTRY_HTTP_TLS_CLIENTAUTH: 'verify-client-cert-if-given' });
    // A self-signed client certificate, and one from a CA the server does not trust.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=ci-client', '-addext', 'extendedKeyUsage=clientAuth', '-keyout', 'rogue.key', '-out', 'rogue.crt'], { cwd: certs.dir, stdio: 'pipe' });
    const other = certificates();
    const untrusted = [
      { cert: readFileSync(join(certs.dir, 'rogue.crt')), key: readFileSync(join(certs.dir, 'rogue.key')) },
      { cert: readFileSync(other.clientCert), key: readFileSync(other.clientKey) },
    ];
    const trusted = { cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) };
    // The client's certificate comes before the server's Finished in TLS 1.2, after it in TLS 1.3: both must refuse.
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      assert.equal((await get(wharf, { ca, maxVersion })).status, 200, `${maxVersion} without a certificate`);
      assert.equal((await get(wharf, { ca, maxVersion, ...trusted })).status, 200, `${maxVersion} with a trusted certificate`);
      for (const client of untrusted) {
        await assert.rejects(get(wharf, { ca, maxVersion, ...client }), /certificate|ECONNRESET|alert|hang up|disconnected/i, `${maxVersion} with an untrusted certificate`);
      }
    }
    assert.match(wharf.output(), /"level":"info".*client certificate refused/);
  });

  test('minimumtls tls1.1 enables TLS 1.1 with a warning; the default refuses it', async () => {
    const certs = certificates();
    const ca = readFileSync(certs.caCert);
    // The client, too, must lower OpenSSL's security level to speak TLS 1.1 at all.
    const tls11 = { ca, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
    const legacy = await serve(certs, { REGISTRY_HTTP_TLS_MINIMUMTLS: 'tls1.1' });
    assert.match(legacy.output(), /"level":"warn".*legacy TLS/);
    const res = await get(legacy, tls11);
    assert.equal(res.status, 200);
    assert.equal(res.protocol, 'TLSv1.1');
    await assert.rejects(get(legacy, { ...tls11, minVersion: 'TLSv1', maxVersion: 'TLSv1' }), /protocol|version|alert/i);
    assert.equal((await get(legacy, { ca })).protocol, 'TLSv1.3');
    const defaults = await serve(certs);
    await assert.rejects(get(defaults, tls11), /protocol|version|alert/i);
    assert.doesNotMatch(defaults.output(), /legacy TLS/);
  });

  test('SIGHUP reloads the certificate without dropping open connections', async () => {
    const certs = certificates();
    const ca = readFileSync(certs.caCert);
    const wharf = await serve(certs);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    const before = await get(wharf, { ca, agent });
    signed(certs.dir, 'renewed', '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    writeFileSync(join(certs.dir, 'chain.pem'), readFileSync(join(certs.dir, 'renewed.crt'), 'utf8') + readFileSync(certs.caCert, 'utf8'));
    copyFileSync(join(certs.dir, 'renewed.key'), certs.serverKey);
    wharf.child.kill('SIGHUP');
    for (let i = 0; i < 50 && !wharf.output().includes('reloaded TLS certificate'); i += 1) await new Promise((r) => setTimeout(r, 100));
    assert.match(wharf.output(), /reloaded TLS certificate/);
    const sameConnection = await get(wharf, { ca, agent });
    assert.equal(sameConnection.status, 200);
    assert.equal(sameConnection.reused, true, 'the open connection survived the reload');
    assert.equal(sameConnection.serial, before.serial);
    const fresh = await get(wharf, { ca });
    assert.notEqual(fresh.serial, before.serial, 'a new connection gets the new certificate');
    // A broken file on the next reload keeps the server running on the current certificate.
    writeFileSync(certs.serverKey, 'not a key');
    wharf.child.kill('SIGHUP');
    for (let i = 0; i < 50 && !wharf.output().includes('reload failed'); i += 1) await new Promise((r) => setTimeout(r, 100));
    assert.equal((await get(wharf, { ca })).serial, fresh.serial);
  });
});

/** Sends a plain HTTP request over TCP and reads everything until the server closes. */
function plainHttpExchange(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write('GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
  });
}

describe('plain HTTP sent to the TLS port', () => {
  test("gets Go's 400 answer, byte for byte as docker-registry gives it, with one process or several", async () => {
    const reference = await startReferenceRegistry({ mode: 'tls' });
    cleanup.push(() => reference.stop());
    const expected = await plainHttpExchange(Number(reference.host.split(':')[1]));
    assert.equal(expected, 'HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n');
    const certs = certificates();
    for (const workers of ['1', '2']) {
      const wharf = await serve(certs, { REGISTRY_SERVER_WORKERS: workers });
      assert.equal(await plainHttpExchange(wharf.port), expected);
      // HTTPS on the same port is unaffected.
      assert.equal((await get(wharf, { ca: readFileSync(certs.caCert) })).status, 200);
    }
  });

  test('wharf --plain-http against a TLS registry says it speaks HTTPS', async () => {
    const certs = certificates();
    const wharf = await serve(certs);
    const user = cliUser();
    cleanup.push(() => user.dispose());
    const result = await user.run(['--plain-http', 'tags', `${wharf.host}/app`]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `wharf: ${wharf.host} speaks HTTPS, not plain HTTP: drop --plain-http (or the http:// scheme); add --ca-cert FILE if its certificate is not trusted\n`);
  });
});
