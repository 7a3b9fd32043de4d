import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { createApp } from '../src/http/app.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { Registry } from '../src/registry/registry.js';
import type { Blobs, RegistryServices } from '../src/registry/services.js';
import { BlobStore } from '../src/storage/blob-store.js';
import { FilesystemDriver } from '../src/storage/filesystem-driver.js';
import { errorCode, raw } from './support/http.js';
import { OCI_MANIFEST, configBlob, imageManifest, randomBlob } from './support/oci-fixtures.js';
import { pushBlob, putManifest } from './support/push.js';

const roots: string[] = [];
const servers: Server[] = [];
after(async () => {
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  roots.forEach((root) => rmSync(root, { recursive: true, force: true }));
});

/** A registry over a fresh directory, in this process: no build, no child process. */
function localRegistry(options: { wrap?: (local: RegistryServices) => RegistryServices; deleteEnabled?: boolean } = {}): Registry {
  const root = mkdtempSync(join(tmpdir(), 'wharf-inproc-'));
  roots.push(root);
  return new Registry(new SqliteMetadataStore({ path: join(root, 'wharf.db') }), new BlobStore(new FilesystemDriver(root)), {
    deleteEnabled: options.deleteEnabled ?? true,
    ...(options.wrap ? { wrap: options.wrap } : {}),
  });
}

async function serve(registry: RegistryServices): Promise<string> {
  const server = createServer(createApp(registry, { log: pino({ level: 'silent' }), accessLog: false }));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('the HTTP app and the services, in process', () => {
  it('serves pushes and pulls through a wrapper around the local services (wrap, do not branch)', async () => {
    const calls: string[] = [];
    const counting = (local: RegistryServices): RegistryServices => {
      const blobs: Blobs = {
        stat: (repository, digest) => (calls.push(`stat ${repository}`), local.blobs.stat(repository, digest)),
        open: (repository, digest, range) => (calls.push(`open ${repository}`), local.blobs.open(repository, digest, range)),
        mount: (...args) => local.blobs.mount(...args),
        delete: (...args) => local.blobs.delete(...args),
      };
      return { ...local, blobs };
    };
    const url = await serve(localRegistry({ wrap: counting }));
    const layer = randomBlob(100_000);
    const config = configBlob();
    await pushBlob(url, 'wrapped/app', layer);
    await pushBlob(url, 'wrapped/app', config);
    assert.equal((await putManifest(url, 'wrapped/app', 'v1', imageManifest(config, [layer]), OCI_MANIFEST)).status, 201);
    const pulled = await raw(url, 'GET', `/v2/wrapped/app/blobs/${layer.digest}`);
    assert.ok(pulled.body.equals(layer.data));
    assert.equal((await raw(url, 'HEAD', `/v2/wrapped/app/blobs/${config.digest}`)).status, 200);
    assert.ok(calls.includes('open wrapped/app'), calls.join());
    assert.ok(calls.includes('stat wrapped/app'), calls.join());
  });

  it('a manifest PUT racing the deletion of one of its blobs leaves consistent state', async () => {
    const registry = localRegistry();
    const url = await serve(registry);
    const config = configBlob({ race: true });
    for (let round = 0; round < 25; round += 1) {
      const layer = randomBlob(1000);
      const repository = `race/app${round}`;
      await pushBlob(url, repository, layer);
      await pushBlob(url, repository, config);
      const manifest = imageManifest(config, [layer]);
      const [put, deleted] = await Promise.all([
        putManifest(url, repository, 'v1', manifest, OCI_MANIFEST),
        raw(url, 'DELETE', `/v2/${repository}/blobs/${layer.digest}`),
      ]);
      assert.equal(deleted.status, 202);
      const blobThere = (await raw(url, 'HEAD', `/v2/${repository}/blobs/${layer.digest}`)).status === 200;
      const manifestThere = (await raw(url, 'HEAD', `/v2/${repository}/manifests/v1`)).status === 200;
      assert.equal(blobThere, false);
      if (put.status === 201) {
        // The push committed before the deletion: the manifest stands, its blob was unlinked after.
        assert.equal(manifestThere, true);
      } else {
        // The deletion came first: the push was refused whole, nothing half-written.
        assert.equal(put.status, 400);
        assert.equal(errorCode(put), 'MANIFEST_BLOB_UNKNOWN');
        assert.equal(manifestThere, false);
        assert.deepEqual((await raw(url, 'GET', `/v2/${repository}/tags/list`)).json().tags ?? [], []);
      }
    }
  });

  it('two writers moving one tag at once both land in its history, in commit order, and the tag ends on the last', async () => {
    const root = mkdtempSync(join(tmpdir(), 'wharf-inproc-'));
    roots.push(root);
    const store = new BlobStore(new FilesystemDriver(root));
    // Two connections to one file: two processes, as SQLite sees it.
    const first = new Registry(new SqliteMetadataStore({ path: join(root, 'wharf.db') }), store, { deleteEnabled: true });
    const second = new Registry(new SqliteMetadataStore({ path: join(root, 'wharf.db') }), store, { deleteEnabled: true });
    const [a, b] = [await serve(first), await serve(second)];
    const config = configBlob({ tagrace: true });
    await pushBlob(a, 'tags/app', config);
    const manifests = Array.from({ length: 10 }, (_, i) => imageManifest(config, [], { annotations: { n: String(i) } }));
    for (const manifest of manifests) assert.equal((await putManifest(a, 'tags/app', manifest.digest, manifest, OCI_MANIFEST)).status, 201);
    await Promise.all(manifests.map((manifest, i) => putManifest(i % 2 ? a : b, 'tags/app', 'latest', manifest, OCI_MANIFEST)));
    const history = await first.metadata.tagHistory('tags/app', 'latest', 100);
    assert.equal(history.length, 10, 'every move is recorded once');
    const current = await raw(a, 'GET', '/v2/tags/app/manifests/latest', { headers: { Accept: OCI_MANIFEST } });
    assert.equal(current.header('docker-content-digest'), history[0]!.digest, 'the tag points where the last recorded move put it');
    const moves = (await first.metadata.readOutbox(0, 1000)).filter((e) => e.event.action === 'tag.move');
    assert.equal(moves.length, 10);
    // Each move names the digest the tag held just before it: a chain with no gaps or forks.
    for (let i = 1; i < moves.length; i += 1) {
      const event = moves[i]!.event as { previous?: string; digest: string };
      assert.equal(event.previous, (moves[i - 1]!.event as { digest: string }).digest);
    }
  });
});
