import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { collectGarbage, type CollectionOptions, type CollectionReport } from '../src/gc/garbage-collector.js';
import { createApp } from '../src/http/app.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { Registry } from '../src/registry/registry.js';
import { BlobStore } from '../src/storage/blob-store.js';
import { FilesystemDriver } from '../src/storage/filesystem-driver.js';
import type { MetadataStore } from '../src/metadata/metadata-store.js';
import { errorCode, raw } from './support/http.js';
import { OCI_INDEX, OCI_MANIFEST, configBlob, imageIndex, imageManifest, randomBlob, type Blob } from './support/oci-fixtures.js';
import { pushBlob, putManifest } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const roots: string[] = [];
const servers: Server[] = [];
const children: WharfProcess[] = [];
after(async () => {
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  await Promise.all(children.map((child) => child.dispose()));
  roots.forEach((root) => rmSync(root, { recursive: true, force: true }));
});

/** Where the registry runs: in this process, or as `wharf serve` with two worker processes. */
type Mode = 'in-process' | 'workers';

interface Fixture {
  url: string;
  root: string;
  /** The collector's view of the registry's metadata (its own connection with workers). */
  metadata: MetadataStore;
  /** The registry's upload service (in process only). */
  registry?: Registry;
  collect(options?: Partial<CollectionOptions>): Promise<CollectionReport>;
  blobFile(digest: string): string;
}

/**
 * A registry over a fresh directory and a collector in this process over the same stores: the
 * registry served in this process, or by `wharf serve --workers 2` (the collector then races
 * processes that share only the database and the files).
 */
async function fixture(mode: Mode = 'in-process'): Promise<Fixture> {
  const root = mkdtempSync(join(tmpdir(), 'wharf-gc-'));
  roots.push(root);
  let url: string;
  let metadata: MetadataStore;
  let store: BlobStore;
  let registry: Registry | undefined;
  if (mode === 'in-process') {
    registry = new Registry(new SqliteMetadataStore({ path: join(root, 'wharf.db') }), new BlobStore(new FilesystemDriver(root)), { deleteEnabled: true });
    const server = createServer(createApp(registry, { log: pino({ level: 'silent' }), accessLog: false }));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    metadata = registry.metadata;
    store = registry.store;
  } else {
    const wharf = await startWharf({ dataDir: root, args: ['--workers', '2', '--delete'] });
    children.push(wharf);
    url = wharf.url;
    metadata = new SqliteMetadataStore({ path: join(root, 'wharf.db') });
    store = new BlobStore(new FilesystemDriver(root));
  }
  return {
    url,
    root,
    metadata,
    ...(registry ? { registry } : {}),
    // Everything pushed so far is older than the collection's start, even within one millisecond.
    collect: async (options = {}) => (await sleep(2), collectGarbage(metadata, store, { dryRun: false, deleteUntagged: false, delayMs: 0, ...options })),
    blobFile: (digest) => join(root, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)),
  };
}

/** Pushes an image (config and layers, then the manifest by `reference`). */
async function pushImage(f: Fixture, repository: string, reference: string, layers: Blob[], options: Parameters<typeof imageManifest>[2] = {}) {
  const config = configBlob({ image: `${repository}:${reference}:${Math.random()}` });
  for (const blob of [config, ...layers]) await pushBlob(f.url, repository, blob);
  const manifest = imageManifest(config, layers, options);
  const res = await putManifest(f.url, repository, reference, manifest, OCI_MANIFEST);
  assert.equal(res.status, 201, res.body.toString());
  return { manifest, config };
}

async function deleteManifest(f: Fixture, repository: string, digest: string): Promise<void> {
  assert.equal((await raw(f.url, 'DELETE', `/v2/${repository}/manifests/${digest}`)).status, 202);
}

async function deleteTag(f: Fixture, repository: string, tag: string): Promise<void> {
  assert.equal((await raw(f.url, 'DELETE', `/v2/${repository}/manifests/${tag}`)).status, 202);
}

async function blobStatus(f: Fixture, repository: string, digest: string): Promise<number> {
  return (await raw(f.url, 'HEAD', `/v2/${repository}/blobs/${digest}`)).status;
}

describe('garbage collection: what it reclaims', () => {
  it('deletes unreferenced blobs (bytes and rows) and keeps every blob a manifest references', async () => {
    const f = await fixture();
    const kept = randomBlob(3000);
    const orphan = randomBlob(5000);
    const { config } = await pushImage(f, 'rules/app', 'v1', [kept]);
    await pushBlob(f.url, 'rules/app', orphan);
    const report = await f.collect();
    assert.deepEqual(report.eligibleBlobs, [orphan.digest]);
    assert.ok(report.marked.includes(kept.digest) && report.marked.includes(config.digest));
    assert.equal(report.deleted.blobs, 1);
    assert.equal(report.bytesFreed, 5000);
    assert.ok(report.durationMs >= 0);
    assert.equal(existsSync(f.blobFile(orphan.digest)), false);
    assert.equal(await f.metadata.getBlob(orphan.digest), undefined);
    assert.equal(await blobStatus(f, 'rules/app', orphan.digest), 404);
    assert.equal(await blobStatus(f, 'rules/app', kept.digest), 200);
    assert.equal(existsSync(f.blobFile(kept.digest)), true);
  });

  it('a dry run reports the same and changes nothing', async () => {
    const f = await fixture();
    const orphan = randomBlob(1000);
    await pushBlob(f.url, 'dry/app', orphan);
    const lines: string[] = [];
    const report = await f.collect({ dryRun: true, onLine: (line) => lines.push(line) });
    assert.deepEqual(report.eligibleBlobs, [orphan.digest]);
    assert.equal(report.deleted.blobs, 0);
    assert.equal(report.bytesFreed, 1000, 'what it would free');
    assert.ok(lines.includes(`blob eligible for deletion: ${orphan.digest}`));
    assert.ok(lines.includes('0 blobs marked, 1 blobs and 0 manifests eligible for deletion'));
    assert.equal(await blobStatus(f, 'dry/app', orphan.digest), 200);
  });

  it('keeps anything touched within the delay', async () => {
    const f = await fixture();
    const fresh = randomBlob(1000);
    await pushBlob(f.url, 'young/app', fresh);
    const image = await pushImage(f, 'young/app', 'v1', [randomBlob(100)]);
    await deleteTag(f, 'young/app', 'v1');
    const report = await f.collect({ delayMs: 3_600_000, deleteUntagged: true });
    assert.deepEqual(report.eligibleBlobs, []);
    assert.deepEqual(report.young, { blobs: 1, manifests: 1 });
    assert.equal(await blobStatus(f, 'young/app', fresh.digest), 200);
    assert.equal((await raw(f.url, 'HEAD', `/v2/young/app/manifests/${image.manifest.digest}`)).status, 200);
  });

  it('untagged manifests: kept by default, deleted with deleteUntagged together with the blobs only they used', async () => {
    const f = await fixture();
    const shared = randomBlob(2000);
    const own = randomBlob(3000);
    await pushImage(f, 'untagged/app', 'v1', [shared]);
    const old = await pushImage(f, 'untagged/app', 'v2', [shared, own]);
    await deleteTag(f, 'untagged/app', 'v2');
    const plain = await f.collect();
    assert.deepEqual(plain.eligibleManifests, []);
    assert.equal(plain.deleted.blobs, 0);
    const report = await f.collect({ deleteUntagged: true });
    assert.deepEqual(report.eligibleManifests, [{ repository: 'untagged/app', digest: old.manifest.digest }]);
    assert.deepEqual(report.eligibleBlobs, [old.config.digest, old.manifest.digest, own.digest].sort());
    assert.equal(report.deleted.manifests, 1);
    assert.equal(report.deleted.blobs, 2);
    assert.equal(report.bytesFreed, old.manifest.data.length + old.config.data.length + 3000);
    assert.equal((await raw(f.url, 'HEAD', `/v2/untagged/app/manifests/${old.manifest.digest}`)).status, 404);
    assert.equal(await blobStatus(f, 'untagged/app', shared.digest), 200);
    assert.equal(await blobStatus(f, 'untagged/app', own.digest), 404);
  });

  it('never deletes a child of a tagged index; deletes the children (and their blobs) of a deleted index', async () => {
    const f = await fixture();
    const amd = await pushImage(f, 'index/app', randomDigestTag(), [randomBlob(1000)]);
    const arm = await pushImage(f, 'index/app', randomDigestTag(), [randomBlob(1000)]);
    // Children pushed by tag, then untagged, as a multi-platform push by digest leaves them.
    const children = [amd, arm].map(({ manifest }) => ({ digest: manifest.digest, size: manifest.data.length, platform: { os: 'linux', architecture: 'amd64' } }));
    const index = imageIndex(children);
    assert.equal((await putManifest(f.url, 'index/app', 'multi', index, OCI_INDEX)).status, 201);
    const tags = (await raw(f.url, 'GET', '/v2/index/app/tags/list')).json<{ tags: string[] }>().tags;
    for (const tag of tags.filter((t) => t !== 'multi')) await deleteTag(f, 'index/app', tag);

    const kept = await f.collect({ deleteUntagged: true });
    assert.deepEqual(kept.eligibleManifests, []);
    assert.equal(kept.deleted.blobs, 0);

    await deleteTag(f, 'index/app', 'multi');
    const report = await f.collect({ deleteUntagged: true });
    assert.deepEqual(report.eligibleManifests.map((m) => m.digest).sort(), [index.digest, amd.manifest.digest, arm.manifest.digest].sort());
    assert.equal(report.deleted.manifests, 3);
    assert.equal(report.deleted.blobs, 4, 'both configs and both layers');
    assert.equal(report.deleted.repositories, 1, 'nothing is left in the repository');
    assert.equal(await f.metadata.repositoryExists('index/app'), false);
  });

  it('keeps referrers of a kept manifest and the subject chain of a kept referrer', async () => {
    const f = await fixture();
    const subject = await pushImage(f, 'refs/app', 'v1', [randomBlob(500)]);
    const about = { digest: subject.manifest.digest, size: subject.manifest.data.length };
    const signature = await pushImage(f, 'refs/app', 'sig', [randomBlob(100)], { subject: about, artifactType: 'application/x-signature' });
    await deleteTag(f, 'refs/app', 'sig');
    // A tagged referrer whose untagged subject is itself a referrer of an untagged manifest.
    const base = await pushImage(f, 'refs/app', 'base', [randomBlob(500)]);
    const middle = await pushImage(f, 'refs/app', 'middle', [randomBlob(100)], { subject: { digest: base.manifest.digest, size: base.manifest.data.length } });
    await pushImage(f, 'refs/app', 'top', [randomBlob(100)], { subject: { digest: middle.manifest.digest, size: middle.manifest.data.length } });
    await deleteTag(f, 'refs/app', 'base');
    await deleteTag(f, 'refs/app', 'middle');
    // An untagged referrer of an untagged subject: both go.
    const lone = await pushImage(f, 'refs/app', 'lone', [randomBlob(100)]);
    const loneSig = await pushImage(f, 'refs/app', 'lonesig', [randomBlob(100)], { subject: { digest: lone.manifest.digest, size: lone.manifest.data.length } });
    await deleteTag(f, 'refs/app', 'lone');
    await deleteTag(f, 'refs/app', 'lonesig');

    const report = await f.collect({ deleteUntagged: true });
    assert.deepEqual(report.eligibleManifests.map((m) => m.digest).sort(), [lone.manifest.digest, loneSig.manifest.digest].sort());
    assert.equal(report.deleted.manifests, 2);
    for (const digest of [subject.manifest.digest, signature.manifest.digest, base.manifest.digest, middle.manifest.digest]) {
      assert.equal((await raw(f.url, 'HEAD', `/v2/refs/app/manifests/${digest}`)).status, 200, digest);
    }
  });

  it('deletes empty repositories and expired upload sessions', async () => {
    const f = await fixture();
    const image = await pushImage(f, 'empty/app', 'v1', [randomBlob(100)]);
    await deleteManifest(f, 'empty/app', image.manifest.digest);
    const abandoned = await raw(f.url, 'POST', '/v2/empty/uploads/blobs/uploads/');
    assert.equal(abandoned.status, 202);
    const report = await f.collect({ purgeUploads: (options) => f.registry!.localUploads.purgeStale(Date.now() + 1, options) });
    assert.equal(report.uploads.sessions, 1);
    assert.deepEqual(report.eligibleRepositories, ['empty/app', 'empty/uploads']);
    assert.equal(report.deleted.repositories, 2);
    assert.equal(await f.metadata.repositoryExists('empty/app'), false);
    assert.equal(await f.metadata.repositoryExists('empty/uploads'), false);
    assert.equal((await raw(f.url, 'GET', '/v2/empty/app/tags/list')).status, 404);
  });

  it('keeps a repository with an upload in progress', async () => {
    const f = await fixture();
    assert.equal((await raw(f.url, 'POST', '/v2/busy/uploads/blobs/uploads/')).status, 202);
    const report = await f.collect();
    assert.deepEqual(report.eligibleRepositories, []);
    assert.equal(await f.metadata.repositoryExists('busy/uploads'), true);
  });

  it('keeps a blob unlinked from one repository while a manifest in another references it, and the other link', async () => {
    const f = await fixture();
    const layer = randomBlob(700);
    await pushImage(f, 'links/a', 'v1', [layer]);
    await pushBlob(f.url, 'links/b', layer);
    assert.equal((await raw(f.url, 'DELETE', `/v2/links/a/blobs/${layer.digest}`)).status, 202);
    const report = await f.collect();
    assert.equal(report.eligibleBlobs.includes(layer.digest), false);
    assert.equal(await blobStatus(f, 'links/b', layer.digest), 200);
  });
});

for (const mode of ['in-process', 'workers'] as const) describe(`garbage collection: races, one interleaving at a time (${mode})`, () => {
  it('a push of a blob being swept waits for the sweep, then puts its bytes back', async () => {
    const f = await fixture(mode);
    const blob = randomBlob(50_000);
    await pushBlob(f.url, 'race/push', blob);
    let push: Promise<Awaited<ReturnType<typeof raw>>> | undefined;
    const report = await f.collect({
      hooks: {
        whileSweeping: async () => {
          push = raw(f.url, 'POST', `/v2/race/push/blobs/uploads/?digest=${blob.digest}`, { body: blob.data, headers: { 'Content-Type': 'application/octet-stream' } });
          // Let the upload's bytes arrive, so that its commit meets the sweeping row (any order is correct).
          await waitUntil(async () => (await f.metadata.staleUploads(Date.now() + 60_000, 10)).some((u) => u.size === blob.data.length));
          await sleep(100);
        },
      },
    });
    assert.equal(report.deleted.blobs, 1);
    assert.equal((await push!).status, 201);
    const pulled = await raw(f.url, 'GET', `/v2/race/push/blobs/${blob.digest}`);
    assert.equal(pulled.status, 200);
    assert.ok(pulled.body.equals(blob.data));
    assert.equal((await f.metadata.getBlob(blob.digest))?.state, 'present');
  });

  it('a mount of a blob being swept is refused (an upload starts instead)', async () => {
    const f = await fixture(mode);
    const blob = randomBlob(1000);
    await pushBlob(f.url, 'race/from', blob);
    let mounted: number | undefined;
    await f.collect({
      hooks: {
        whileSweeping: async () => {
          mounted = (await raw(f.url, 'POST', `/v2/race/to/blobs/uploads/?mount=${blob.digest}&from=race/from`)).status;
        },
      },
    });
    assert.equal(mounted, 202, 'not mounted: the client uploads');
    assert.equal(await blobStatus(f, 'race/to', blob.digest), 404);
    await pushBlob(f.url, 'race/to', blob);
    assert.equal(await blobStatus(f, 'race/to', blob.digest), 200);
  });

  it('a mount just before the sweep decision keeps the blob', async () => {
    const f = await fixture(mode);
    const blob = randomBlob(1000);
    await pushBlob(f.url, 'race/from2', blob);
    const report = await f.collect({
      hooks: {
        beforeBlobSweep: async () => {
          assert.equal((await raw(f.url, 'POST', `/v2/race/to2/blobs/uploads/?mount=${blob.digest}&from=race/from2`)).status, 201);
        },
      },
    });
    assert.equal(report.rescued.blobs, 1);
    assert.equal(await blobStatus(f, 'race/to2', blob.digest), 200);
    assert.equal(existsSync(f.blobFile(blob.digest)), true);
  });

  it('a manifest PUT committed before the decision keeps a blob whose last reference was deleted', async () => {
    const f = await fixture(mode);
    const layer = randomBlob(4000);
    const old = await pushImage(f, 'race/manifest', 'v1', [layer]);
    await deleteTag(f, 'race/manifest', 'v1');
    const config = configBlob({ again: true });
    const next = imageManifest(config, [layer]);
    const report = await f.collect({
      deleteUntagged: true,
      hooks: {
        beforeBlobSweep: async (digest) => {
          if (digest !== layer.digest) return;
          await pushBlob(f.url, 'race/manifest', config);
          assert.equal((await putManifest(f.url, 'race/manifest', 'v2', next, OCI_MANIFEST)).status, 201);
        },
      },
    });
    assert.equal(report.deleted.manifests, 1, 'the old manifest went');
    assert.equal(report.rescued.blobs, 1, 'the layer was referenced again before its sweep');
    assert.equal(await blobStatus(f, 'race/manifest', layer.digest), 200);
    assert.equal(existsSync(f.blobFile(layer.digest)), true);
    assert.equal(await blobStatus(f, 'race/manifest', old.config.digest), 404);
  });

  it('a client that saw the blob (HEAD) and PUTs its manifest after the mark revives it', async () => {
    const f = await fixture(mode);
    const layer = randomBlob(4000);
    const config = configBlob({ seen: true });
    for (const blob of [config, layer]) await pushBlob(f.url, 'race/seen', blob);
    assert.equal(await blobStatus(f, 'race/seen', layer.digest), 200, 'the client checks, and does not upload');
    const next = imageManifest(config, [layer]);
    let revived = false;
    const report = await f.collect({
      hooks: {
        // One batch is marked before any of its blobs reaches this hook; once this client has
        // pushed, the blobs it revived are no longer hidden.
        whileMarked: async (digest) => {
          if (!revived) assert.equal(await blobStatus(f, 'race/seen', digest), 404, 'a marked blob is hidden');
          if (digest === layer.digest) {
            revived = true;
            // The config was marked (or swept) first: the client's view is older. Push it again, as after a 404.
            await pushBlob(f.url, 'race/seen', config);
            assert.equal((await putManifest(f.url, 'race/seen', 'v1', next, OCI_MANIFEST)).status, 201);
          }
        },
      },
    });
    assert.ok(report.rescued.blobs >= 1);
    assert.equal(await blobStatus(f, 'race/seen', layer.digest), 200);
    assert.equal((await f.metadata.getBlob(layer.digest))?.state, 'present');
    const pulled = await raw(f.url, 'GET', `/v2/race/seen/blobs/${layer.digest}`);
    assert.ok(pulled.body.equals(layer.data));
  });

  it('a manifest PUT during the sweep waits for the decision and is refused; pushing again works', async () => {
    const f = await fixture(mode);
    const layer = randomBlob(4000);
    await pushImage(f, 'race/late', 'v1', [layer]);
    await deleteTag(f, 'race/late', 'v1');
    const config = configBlob({ late: true });
    await pushBlob(f.url, 'race/late', config);
    const next = imageManifest(config, [layer]);
    let put: ReturnType<typeof putManifest> | undefined;
    await f.collect({
      deleteUntagged: true,
      delayMs: 0,
      hooks: {
        whileSweeping: async (digest) => {
          if (digest === layer.digest) put = putManifest(f.url, 'race/late', 'v2', next, OCI_MANIFEST);
          await sleep(20);
        },
      },
    });
    const refused = await put!;
    assert.equal(refused.status, 400);
    assert.equal(errorCode(refused), 'MANIFEST_BLOB_UNKNOWN');
    assert.equal((await raw(f.url, 'HEAD', '/v2/race/late/manifests/v2')).status, 404, 'no manifest references a swept blob');
    for (const blob of [config, layer]) await pushBlob(f.url, 'race/late', blob);
    assert.equal((await putManifest(f.url, 'race/late', 'v2', next, OCI_MANIFEST)).status, 201);
  });

  it('a collector that dies mid-sweep leaves rows nothing can use, and the next one finishes them', async () => {
    const f = await fixture(mode);
    const blob = randomBlob(2000);
    await pushBlob(f.url, 'race/crash', blob);
    await assert.rejects(
      f.collect({
        hooks: {
          whileSweeping: async () => {
            throw new Error('killed');
          },
        },
      }),
      /killed/,
    );
    assert.equal((await f.metadata.getBlob(blob.digest))?.state, 'sweeping');
    assert.equal(await blobStatus(f, 'race/crash', blob.digest), 404, 'not served while sweeping');
    const report = await f.collect();
    assert.equal(report.deleted.resumedSweeps, 1);
    assert.equal(report.bytesFreed, 2000);
    assert.equal(await f.metadata.getBlob(blob.digest), undefined);
    assert.equal(existsSync(f.blobFile(blob.digest)), false);
  });

  it('one collection at a time: a second one is refused with UNAVAILABLE while the first runs', async () => {
    const f = await fixture(mode);
    await pushBlob(f.url, 'race/lease', randomBlob(100));
    let second: Promise<unknown> | undefined;
    await f.collect({
      hooks: {
        whileSweeping: async () => {
          second = f.collect();
          await second.catch(() => undefined);
        },
      },
    });
    await assert.rejects(second!, (error: Error & { code?: string }) => error.code === 'UNAVAILABLE' && /another garbage collection is running/.test(error.message));
    assert.equal((await f.collect()).deleted.blobs, 0, 'the lease was released');
  });
});

for (const mode of ['in-process', 'workers'] as const) describe(`deleting what a client is downloading (${mode})`, () => {
  it('does not cut a blob download short on the filesystem store', async () => {
    const f = await fixture(mode);
    // Larger than the socket buffers, so that most of it is still to be read from the file.
    const big = randomBlob(32 * 1024 * 1024);
    const image = await pushImage(f, 'download/app', 'v1', [big]);
    const url = new URL(`${f.url}/v2/download/app/blobs/${big.digest}`);
    const hash = createHash('sha256');
    let received = 0;
    const done = new Promise<number>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname }, (res) => {
        let collecting: Promise<void> | undefined;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          received += chunk.length;
          if (collecting === undefined) {
            // Hold the download while the manifest is deleted and its blobs are collected.
            res.pause();
            collecting = (async () => {
              await deleteManifest(f, 'download/app', image.manifest.digest);
              const report = await f.collect();
              assert.ok(report.deleted.blobs >= 1);
              assert.equal(existsSync(f.blobFile(big.digest)), false, 'the file is gone from the tree');
              res.resume();
            })();
            collecting.catch(reject);
          }
        });
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(await done, 200);
    assert.equal(received, big.data.length);
    assert.equal(`sha256:${hash.digest('hex')}`, big.digest);
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function randomDigestTag(): string {
  return `t${Math.random().toString(36).slice(2, 10)}`;
}

async function waitUntil(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await sleep(5);
}
