import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { connectRegistry, signImage, type RegistryClient } from '../src/client/index.js';
import { collectGarbage } from '../src/gc/garbage-collector.js';
import { createApp } from '../src/http/app.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { Registry } from '../src/registry/registry.js';
import { KeySigner, signatureTag } from '../src/signing/index.js';
import { BlobStore } from '../src/storage/blob-store.js';
import { FilesystemDriver } from '../src/storage/filesystem-driver.js';
import { OCI_MANIFEST, configBlob, imageManifest, randomBlob } from './support/oci-fixtures.js';
import { pushBlob, putManifest } from './support/push.js';

/**
 * The collector and cosign signatures: a `sha256-HEX.sig` tag keeps its manifest only while the
 * image it names is kept; once the image is deleted (or collected as untagged), its signatures go.
 */
const cleanup: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

const signer = new KeySigner(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);

async function fixture() {
  const root = mkdtempSync(join(tmpdir(), 'wharf-gc-sig-'));
  const registry = new Registry(new SqliteMetadataStore({ path: join(root, 'wharf.db') }), new BlobStore(new FilesystemDriver(root)), { deleteEnabled: true });
  const server: Server = createServer(createApp(registry, { log: pino({ level: 'silent' }), accessLog: false }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client: RegistryClient = connectRegistry(host, { plainHttp: true });
  cleanup.push(
    () => rmSync(root, { recursive: true, force: true }),
    () => new Promise<void>((resolve) => server.close(() => resolve())),
    () => client.close(),
  );
  const url = `http://${host}`;
  /** Pushes a one-layer image under `tag` and signs it; returns its digest and its signature manifest's. */
  const pushSigned = async (repo: string, tag: string) => {
    const layer = randomBlob(64);
    const config = configBlob({ tag });
    await pushBlob(url, repo, layer);
    await pushBlob(url, repo, config);
    const manifest = imageManifest(config, [layer]);
    await putManifest(url, repo, tag, manifest, OCI_MANIFEST);
    const [signed] = await signImage(client, host, repo, { digest: manifest.digest, mediaType: OCI_MANIFEST, size: manifest.data.length }, { signer });
    return { digest: manifest.digest, signature: signed!.signatureManifest };
  };
  const collect = async (deleteUntagged: boolean) => {
    await new Promise((resolve) => setTimeout(resolve, 2));
    return collectGarbage(registry.metadata, registry.store, { dryRun: false, deleteUntagged, delayMs: 0 });
  };
  return { registry, client, url, pushSigned, collect };
}

describe('signatures and garbage collection', () => {
  it('keeps the signatures of kept images; deletes those of a deleted image, tag and manifest', async () => {
    const f = await fixture();
    const kept = await f.pushSigned('app', 'v1');
    const doomed = await f.pushSigned('app', 'v2');
    const removed = await fetch(`${f.url}/v2/app/manifests/${doomed.digest}`, { method: 'DELETE' });
    assert.equal(removed.status, 202);
    const report = await f.collect(false);
    assert.equal(report.deleted.manifests, 1);
    assert.equal(await f.registry.metadata.getTaggedManifest('app', signatureTag(doomed.digest)), undefined);
    assert.equal(await f.registry.metadata.getManifest('app', doomed.signature), undefined);
    assert.equal((await f.registry.metadata.getTaggedManifest('app', signatureTag(kept.digest)))?.digest, kept.signature);
    // The deleted signature's payload went with it; the kept one's is still there.
    assert.ok(report.deleted.blobs >= 1);
  });

  it('with --delete-untagged, an untagged image and its signatures go together; a tagged one keeps them', async () => {
    const f = await fixture();
    const tagged = await f.pushSigned('web', 'v1');
    const untagged = await f.pushSigned('web', 'v2');
    assert.equal((await fetch(`${f.url}/v2/web/manifests/v2`, { method: 'DELETE' })).status, 202);
    const report = await f.collect(true);
    assert.deepEqual(
      report.eligibleManifests.map((m) => m.digest).sort(),
      [untagged.digest, untagged.signature].sort(),
    );
    assert.equal(await f.registry.metadata.getManifest('web', untagged.digest), undefined);
    assert.equal(await f.registry.metadata.getManifest('web', untagged.signature), undefined);
    assert.ok(await f.registry.metadata.getManifest('web', tagged.digest));
    assert.ok(await f.registry.metadata.getManifest('web', tagged.signature));
    assert.equal(report.deleted.manifests, 2);
  });

  it('an image under a tag that only looks like a signature tag is kept', async () => {
    const f = await fixture();
    const layer = randomBlob(32);
    const config = configBlob({ disguised: true });
    await pushBlob(f.url, 'odd', layer);
    await pushBlob(f.url, 'odd', config);
    const manifest = imageManifest(config, [layer]);
    await putManifest(f.url, 'odd', `sha256-${'b'.repeat(64)}.sig`, manifest, OCI_MANIFEST);
    for (const deleteUntagged of [false, true]) {
      const report = await f.collect(deleteUntagged);
      assert.equal(report.deleted.manifests, 0);
    }
    assert.ok(await f.registry.metadata.getManifest('odd', manifest.digest));
  });

  it('a signature of an image that is kept is never collected, however old', async () => {
    const f = await fixture();
    const image = await f.pushSigned('keep', 'v1');
    await f.collect(true);
    await f.collect(false);
    assert.ok(await f.registry.metadata.getManifest('keep', image.signature));
    assert.equal((await f.registry.metadata.getTaggedManifest('keep', signatureTag(image.digest)))?.digest, image.signature);
  });
});
