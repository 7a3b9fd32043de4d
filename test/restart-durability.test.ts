import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { errorCode, raw, sendAndHangUp } from './support/http.js';
import { OCI_MANIFEST, configBlob, imageManifest, randomBlob } from './support/oci-fixtures.js';
import { pushBlob, putManifest, startUpload, withQuery } from './support/push.js';
import { startWharf } from './support/wharf-process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'wharf-restart-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

describe('a restart loses nothing', () => {
  const config = configBlob({ author: 'restart test' });
  const layer = randomBlob(300_000);
  const image = imageManifest(config, [layer]);
  const chunked = randomBlob(90_000);
  let uploadLocation = '';

  it('push, stop with SIGTERM, start again, pull byte-identical content and resume an upload', async () => {
    const first = await startWharf({ dataDir, args: ['--delete'] });
    try {
      await pushBlob(first.url, 'durable/app', config);
      await pushBlob(first.url, 'durable/app', layer);
      assert.equal((await putManifest(first.url, 'durable/app', 'v1', image, OCI_MANIFEST)).status, 201);
      uploadLocation = await startUpload(first.url, 'durable/app');
      const res = await raw(first.url, 'PATCH', uploadLocation, { headers: { 'Content-Range': '0-29999' }, body: chunked.data.subarray(0, 30_000) });
      assert.equal(res.status, 202);
    } finally {
      assert.equal(await first.stop(), 0, 'clean exit on SIGTERM');
    }

    const second = await startWharf({ dataDir, args: ['--delete'] });
    try {
      const manifest = await raw(second.url, 'GET', '/v2/durable/app/manifests/v1');
      assert.ok(manifest.body.equals(image.data));
      assert.ok((await raw(second.url, 'GET', `/v2/durable/app/blobs/${layer.digest}`)).body.equals(layer.data));
      assert.ok((await raw(second.url, 'GET', `/v2/durable/app/blobs/${config.digest}`)).body.equals(config.data));
      const status = await raw(second.url, 'GET', uploadLocation);
      assert.equal(status.status, 204);
      assert.equal(status.header('range'), '0-29999');
      const rest = await raw(second.url, 'PATCH', uploadLocation, { headers: { 'Content-Range': '30000-89999' }, body: chunked.data.subarray(30_000) });
      assert.equal(rest.status, 202);
      assert.equal((await raw(second.url, 'PUT', withQuery(uploadLocation, `digest=${chunked.digest}`))).status, 201);
      assert.ok((await raw(second.url, 'GET', `/v2/durable/app/blobs/${chunked.digest}`)).body.equals(chunked.data));
    } finally {
      await second.stop();
    }
  });

  it('SIGKILL in the middle of an upload: the session resumes from its last recorded chunk, and no partial blob is served', async () => {
    const big = randomBlob(8 * 1024 * 1024);
    const first = await startWharf({ dataDir });
    let location = '';
    try {
      location = await startUpload(first.url, 'durable/killed');
      const one = await raw(first.url, 'PATCH', location, { headers: { 'Content-Range': '0-1048575' }, body: big.data.subarray(0, 1024 * 1024) });
      assert.equal(one.status, 202);
      // A second chunk is cut off mid-way by the kill: the server must not count any of it.
      const killed = raw(first.url, 'PATCH', location, {
        headers: { 'Content-Range': `1048576-${big.data.length - 1}` },
        body: (async function* () {
          yield big.data.subarray(1024 * 1024, 3 * 1024 * 1024);
          await new Promise((resolve) => setTimeout(resolve, 300));
          await first.kill();
          yield big.data.subarray(3 * 1024 * 1024);
        })(),
      }).catch((error: Error) => error);
      assert.ok((await killed) instanceof Error, 'the connection died with the server');
      // A monolithic upload killed mid-body leaves no blob either.
    } finally {
      await first.kill();
    }

    const second = await startWharf({ dataDir });
    try {
      assert.equal((await raw(second.url, 'HEAD', `/v2/durable/killed/blobs/${big.digest}`)).status, 404, 'no partial blob');
      const status = await raw(second.url, 'GET', location);
      assert.equal(status.status, 204);
      assert.equal(status.header('range'), '0-1048575', 'resumes after the last acknowledged chunk');
      const rest = await raw(second.url, 'PATCH', location, { headers: { 'Content-Range': `1048576-${big.data.length - 1}` }, body: big.data.subarray(1024 * 1024) });
      assert.equal(rest.status, 202);
      assert.equal((await raw(second.url, 'PUT', withQuery(location, `digest=${big.digest}`))).status, 201);
      const pulled = await raw(second.url, 'GET', `/v2/durable/killed/blobs/${big.digest}`);
      assert.ok(pulled.body.equals(big.data), 'byte-identical after resume');
    } finally {
      await second.stop();
    }
  });

  it('SIGKILL during a monolithic upload leaves the blob cleanly unknown', async () => {
    const big = randomBlob(4 * 1024 * 1024);
    const first = await startWharf({ dataDir });
    try {
      // The socket may see ECONNRESET when the server dies: that is the point, not a failure.
      const hangUp = sendAndHangUp(first.port, `/v2/durable/mono/blobs/uploads/?digest=${big.digest}`, big.data.length, big.data.subarray(0, 2 * 1024 * 1024)).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await first.kill();
      await hangUp;
    } finally {
      await first.kill();
    }
    const second = await startWharf({ dataDir });
    try {
      const res = await raw(second.url, 'GET', `/v2/durable/mono/blobs/${big.digest}`);
      assert.equal(res.status, 404);
      assert.equal(errorCode(res), 'BLOB_UNKNOWN');
      assert.ok((await raw(second.url, 'GET', '/v2/durable/app/manifests/v1')).body.equals(image.data), 'earlier content intact');
    } finally {
      await second.stop();
    }
  });
});
