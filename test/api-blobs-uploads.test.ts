import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { errorCode, raw, sendAndHangUp } from './support/http.js';
import { blob, randomBlob, sha256, sha512 } from './support/oci-fixtures.js';
import { pushBlob, startUpload, withQuery } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

let wharf: WharfProcess;
let url: string;
before(async () => {
  wharf = await startWharf({ args: ['--delete'] });
  url = wharf.url;
});
after(async () => wharf.dispose());

describe('base endpoint', () => {
  it('answers 200 {} with the API version header', async () => {
    const res = await raw(url, 'GET', '/v2/');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), {});
    assert.equal(res.header('docker-distribution-api-version'), 'registry/2.0');
  });
});

describe('monolithic upload', () => {
  it('POST ?digest= with a body creates the blob (201) and GET returns it byte for byte', async () => {
    const b = randomBlob(100_000);
    const res = await raw(url, 'POST', `/v2/mono/app/blobs/uploads/?digest=${b.digest}`, { body: b.data });
    assert.equal(res.status, 201);
    assert.equal(res.header('location'), `/v2/mono/app/blobs/${b.digest}`);
    assert.equal(res.header('docker-content-digest'), b.digest);
    const get = await raw(url, 'GET', `/v2/mono/app/blobs/${b.digest}`);
    assert.equal(get.status, 200);
    assert.ok(get.body.equals(b.data));
    assert.equal(get.header('content-length'), String(b.data.length));
    assert.equal(get.header('docker-content-digest'), b.digest);
    assert.equal(get.header('etag'), `"${b.digest}"`);
    assert.equal(get.header('accept-ranges'), 'bytes');
  });

  it('POST then PUT with the whole body', async () => {
    const b = randomBlob(5000);
    const location = await startUpload(url, 'mono/app');
    const res = await raw(url, 'PUT', withQuery(location, `digest=${b.digest}`), { body: b.data });
    assert.equal(res.status, 201);
    assert.equal((await raw(url, 'HEAD', `/v2/mono/app/blobs/${b.digest}`)).status, 200);
  });

  it('refuses content that does not match the digest, and leaves nothing visible', async () => {
    const b = randomBlob(1000);
    const wrong = sha256('something else');
    const res = await raw(url, 'POST', `/v2/mono/app/blobs/uploads/?digest=${wrong}`, { body: b.data });
    assert.equal(res.status, 400);
    assert.equal(errorCode(res), 'DIGEST_INVALID');
    assert.equal((await raw(url, 'HEAD', `/v2/mono/app/blobs/${wrong}`)).status, 404);
    assert.equal((await raw(url, 'HEAD', `/v2/mono/app/blobs/${b.digest}`)).status, 404);
  });

  it('accepts sha512 digests', async () => {
    const data = Buffer.from('sha512 content');
    const digest = sha512(data);
    const res = await raw(url, 'POST', `/v2/mono/app/blobs/uploads/?digest=${digest}`, { body: data });
    assert.equal(res.status, 201);
    const get = await raw(url, 'GET', `/v2/mono/app/blobs/${digest}`);
    assert.equal(get.status, 200);
    assert.ok(get.body.equals(data));
  });

  it('refuses malformed and unsupported digests with DIGEST_INVALID', async () => {
    for (const digest of ['sha256:abc', 'md5:d41d8cd98f00b204e9800998ecf8427e', 'sha256:' + 'G'.repeat(64), 'nocolon']) {
      const res = await raw(url, 'POST', `/v2/mono/app/blobs/uploads/?digest=${digest}`, { body: 'x' });
      assert.equal(res.status, 400, digest);
      assert.equal(errorCode(res), 'DIGEST_INVALID', digest);
    }
  });

  it('leaves nothing visible when the client disconnects mid-body', async () => {
    const b = randomBlob(100_000);
    await sendAndHangUp(wharf.port, `/v2/mono/app/blobs/uploads/?digest=${b.digest}`, b.data.length, b.data.subarray(0, 40_000));
    assert.equal((await raw(url, 'HEAD', `/v2/mono/app/blobs/${b.digest}`)).status, 404);
    assert.equal((await raw(url, 'GET', '/v2/')).status, 200, 'server still up');
  });
});

describe('chunked upload', () => {
  it('PATCH chunks with Content-Range, GET progress, PUT to finish', async () => {
    const b = randomBlob(3 * 1024 + 7);
    let location = await startUpload(url, 'chunked');
    const first = await raw(url, 'POST', '/v2/chunked/blobs/uploads/');
    assert.equal(first.header('range'), '0-0');
    assert.ok(first.header('docker-upload-uuid'));
    const chunks = [b.data.subarray(0, 1024), b.data.subarray(1024, 2048), b.data.subarray(2048)];
    let offset = 0;
    for (const chunk of chunks) {
      const res = await raw(url, 'PATCH', location, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
      assert.equal(res.status, 202);
      offset += chunk.length;
      assert.equal(res.header('range'), `0-${offset - 1}`);
      location = res.header('location')!;
    }
    const status = await raw(url, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.header('range'), `0-${b.data.length - 1}`);
    const done = await raw(url, 'PUT', withQuery(location, `digest=${b.digest}`));
    assert.equal(done.status, 201);
    const get = await raw(url, 'GET', `/v2/chunked/blobs/${b.digest}`);
    assert.ok(get.body.equals(b.data));
  });

  it('answers 416 to an out-of-order chunk and to a repeated chunk, keeping the session', async () => {
    const b = randomBlob(40);
    const location = await startUpload(url, 'chunked');
    const outOfOrder = await raw(url, 'PATCH', location, { headers: { 'Content-Range': '20-39' }, body: b.data.subarray(20) });
    assert.equal(outOfOrder.status, 416);
    assert.equal(outOfOrder.header('range'), '0-0');
    assert.equal(outOfOrder.header('location'), location);
    const ok = await raw(url, 'PATCH', location, { headers: { 'Content-Range': '0-19' }, body: b.data.subarray(0, 20) });
    assert.equal(ok.status, 202);
    const repeated = await raw(url, 'PATCH', location, { headers: { 'Content-Range': '0-19' }, body: b.data.subarray(0, 20) });
    assert.equal(repeated.status, 416);
    assert.equal(repeated.header('range'), '0-19');
    const status = await raw(url, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.header('range'), '0-19');
    const last = await raw(url, 'PUT', withQuery(location, `digest=${b.digest}`), { headers: { 'Content-Range': '20-39' }, body: b.data.subarray(20) });
    assert.equal(last.status, 201, 'PUT with the final chunk');
    assert.ok((await raw(url, 'GET', `/v2/chunked/blobs/${b.digest}`)).body.equals(b.data));
  });

  it('answers 416 when Content-Range and Content-Length disagree, and for a malformed Content-Range', async () => {
    const location = await startUpload(url, 'chunked');
    const mismatch = await raw(url, 'PATCH', location, { headers: { 'Content-Range': '0-99' }, body: Buffer.alloc(10) });
    assert.equal(mismatch.status, 416);
    assert.equal(errorCode(mismatch), 'RANGE_INVALID');
    const malformed = await raw(url, 'PATCH', location, { headers: { 'Content-Range': 'bytes=abc' }, body: Buffer.alloc(10) });
    assert.equal(malformed.status, 416);
    assert.equal((await raw(url, 'GET', location)).header('range'), '0-0', 'no bytes were counted');
  });

  it('streams a PATCH without Content-Range, and finishes with PUT', async () => {
    const b = randomBlob(70_000);
    const location = await startUpload(url, 'streamed');
    const res = await raw(url, 'PATCH', location, {
      body: (async function* () {
        yield b.data.subarray(0, 30_000);
        yield b.data.subarray(30_000);
      })(),
    });
    assert.equal(res.status, 202);
    assert.equal(res.header('range'), `0-${b.data.length - 1}`);
    assert.equal((await raw(url, 'PUT', withQuery(res.header('location')!, `digest=${b.digest}`))).status, 201);
  });

  it('discards the session on a digest mismatch at PUT', async () => {
    const location = await startUpload(url, 'chunked');
    await raw(url, 'PATCH', location, { body: 'hello' });
    const res = await raw(url, 'PUT', withQuery(location, `digest=${sha256('other')}`));
    assert.equal(res.status, 400);
    assert.equal(errorCode(res), 'DIGEST_INVALID');
    assert.equal((await raw(url, 'GET', location)).status, 404);
  });

  it('requires the digest parameter on PUT', async () => {
    const location = await startUpload(url, 'chunked');
    const res = await raw(url, 'PUT', location);
    assert.equal(res.status, 400);
    assert.equal(errorCode(res), 'DIGEST_INVALID');
  });

  it('DELETE cancels a session; its URL is then unknown', async () => {
    const location = await startUpload(url, 'chunked');
    assert.equal((await raw(url, 'DELETE', location)).status, 204);
    const res = await raw(url, 'GET', location);
    assert.equal(res.status, 404);
    assert.equal(errorCode(res), 'BLOB_UPLOAD_UNKNOWN');
    assert.equal((await raw(url, 'PATCH', location, { body: 'x' })).status, 404);
  });

  it('refuses unknown session ids and sessions of another repository', async () => {
    const location = await startUpload(url, 'chunked');
    const id = location.split('/').pop()!;
    assert.equal(errorCode(await raw(url, 'GET', `/v2/other/blobs/uploads/${id}`)), 'BLOB_UPLOAD_UNKNOWN');
    assert.equal(errorCode(await raw(url, 'GET', '/v2/chunked/blobs/uploads/00000000-0000-0000-0000-000000000000')), 'BLOB_UPLOAD_UNKNOWN');
    assert.equal(errorCode(await raw(url, 'GET', '/v2/chunked/blobs/uploads/..%2f..%2fetc')), 'BLOB_UPLOAD_UNKNOWN');
  });
});

describe('blob reads', () => {
  const b = blob(Buffer.from('0123456789abcdefghij'));
  before(async () => pushBlob(url, 'reads', b));

  it('HEAD gives length and digest without a body', async () => {
    const res = await raw(url, 'HEAD', `/v2/reads/blobs/${b.digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.header('content-length'), '20');
    assert.equal(res.body.length, 0);
  });

  it('serves byte ranges with 206 and refuses unsatisfiable ones with 416', async () => {
    const mid = await raw(url, 'GET', `/v2/reads/blobs/${b.digest}`, { headers: { Range: 'bytes=5-9' } });
    assert.equal(mid.status, 206);
    assert.equal(mid.body.toString(), '56789');
    assert.equal(mid.header('content-range'), 'bytes 5-9/20');
    const open = await raw(url, 'GET', `/v2/reads/blobs/${b.digest}`, { headers: { Range: 'bytes=15-' } });
    assert.equal(open.body.toString(), 'fghij');
    const suffix = await raw(url, 'GET', `/v2/reads/blobs/${b.digest}`, { headers: { Range: 'bytes=-3' } });
    assert.equal(suffix.body.toString(), 'hij');
    const beyond = await raw(url, 'GET', `/v2/reads/blobs/${b.digest}`, { headers: { Range: 'bytes=20-30' } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.header('content-range'), 'bytes */20');
    const reversed = await raw(url, 'GET', `/v2/reads/blobs/${b.digest}`, { headers: { Range: 'bytes=9-5' } });
    assert.equal(reversed.status, 416, 'a last byte before the first is an invalid range');
    assert.equal(reversed.header('content-range'), 'bytes */20');
    assert.equal(errorCode(reversed), 'RANGE_INVALID');
    // Other units and several ranges may be ignored: the whole blob.
    for (const range of ['items=0-1', 'bytes=0-1,5-6']) {
      const whole = await raw(url, 'GET', `/v2/reads/blobs/${b.digest}`, { headers: { Range: range } });
      assert.equal(whole.status, 200, range);
      assert.equal(whole.body.length, 20, range);
    }
  });

  it('answers If-None-Match with 304', async () => {
    const res = await raw(url, 'GET', `/v2/reads/blobs/${b.digest}`, { headers: { 'If-None-Match': `"${b.digest}"` } });
    assert.equal(res.status, 304);
  });

  it('serves a blob of many read chunks whole and by range, and survives a client leaving mid-pull', async () => {
    const big = randomBlob(5 * 1024 * 1024 + 12345);
    await pushBlob(url, 'reads', big);
    const whole = await raw(url, 'GET', `/v2/reads/blobs/${big.digest}`);
    assert.equal(whole.status, 200);
    assert.ok(whole.body.equals(big.data));
    const range = await raw(url, 'GET', `/v2/reads/blobs/${big.digest}`, { headers: { Range: 'bytes=1048570-3145730' } });
    assert.equal(range.status, 206);
    assert.ok(range.body.equals(big.data.subarray(1048570, 3145731)));

    // Read the first bytes, then hang up.
    const { host, port } = new URL(url);
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: host.split(':')[0], port, path: `/v2/reads/blobs/${big.digest}`, agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (error) => (req.destroyed ? resolve() : reject(error)));
      req.end();
    });
    const again = await raw(url, 'GET', `/v2/reads/blobs/${big.digest}`);
    assert.equal(again.status, 200);
    assert.ok(again.body.equals(big.data));
    assert.doesNotMatch(wharf.output(), /"level":"error"/, 'no error logged for a client that left');
  });

  it('keeps blobs per repository: another repository cannot read it', async () => {
    const res = await raw(url, 'GET', `/v2/elsewhere/blobs/${b.digest}`);
    assert.equal(res.status, 404);
    assert.equal(errorCode(res), 'BLOB_UNKNOWN');
  });
});

describe('cross-repository mount', () => {
  const b = randomBlob(2048);
  before(async () => pushBlob(url, 'mount/source', b));

  it('mounts from a repository that has the blob (201)', async () => {
    const res = await raw(url, 'POST', `/v2/mount/target/blobs/uploads/?mount=${b.digest}&from=mount/source`);
    assert.equal(res.status, 201);
    assert.equal(res.header('location'), `/v2/mount/target/blobs/${b.digest}`);
    assert.equal(res.header('docker-content-digest'), b.digest);
    assert.ok((await raw(url, 'GET', `/v2/mount/target/blobs/${b.digest}`)).body.equals(b.data));
  });

  it('falls back to an upload session (202) when `from` lacks the blob', async () => {
    const res = await raw(url, 'POST', `/v2/mount/target2/blobs/uploads/?mount=${b.digest}&from=mount/empty`);
    assert.equal(res.status, 202);
    assert.match(res.header('location')!, /^\/v2\/mount\/target2\/blobs\/uploads\//);
    assert.equal((await raw(url, 'HEAD', `/v2/mount/target2/blobs/${b.digest}`)).status, 404);
  });

  it('mounts automatically without `from` where the registry has the blob', async () => {
    const res = await raw(url, 'POST', `/v2/mount/auto/blobs/uploads/?mount=${b.digest}`);
    assert.equal(res.status, 201);
    assert.equal((await raw(url, 'HEAD', `/v2/mount/auto/blobs/${b.digest}`)).status, 200);
  });

  it('starts a session (202) for a blob the registry does not have', async () => {
    const res = await raw(url, 'POST', `/v2/mount/auto/blobs/uploads/?mount=${sha256('never pushed')}`);
    assert.equal(res.status, 202);
  });

  it('stores one copy for the whole registry', async () => {
    const { readdirSync } = await import('node:fs');
    const { join } = await import('node:path');
    const hex = b.digest.slice(7);
    const files = readdirSync(join(wharf.dataDir, 'blobs', 'sha256', hex.slice(0, 2)));
    assert.deepEqual(files.filter((f) => f === hex), [hex]);
  });
});

describe('blob delete', () => {
  it('removes the repository link: 202, then 404', async () => {
    const b = randomBlob(64);
    await pushBlob(url, 'deleting', b);
    assert.equal((await raw(url, 'DELETE', `/v2/deleting/blobs/${b.digest}`)).status, 202);
    assert.equal((await raw(url, 'GET', `/v2/deleting/blobs/${b.digest}`)).status, 404);
    const again = await raw(url, 'DELETE', `/v2/deleting/blobs/${b.digest}`);
    assert.equal(again.status, 404);
    assert.equal(errorCode(again), 'BLOB_UNKNOWN');
  });
});
