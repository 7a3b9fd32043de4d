import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegistryError } from '../../src/errors/index.js';
import type { BlobRecord, ManifestPut, MetadataStore } from '../../src/metadata/metadata-store.js';

// The collector's steps act on batches; these ask about one row at a time.
async function deleteOne(store: MetadataStore, repository: string, digest: string, options: { touchedBefore: number; historySince?: number }): Promise<boolean> {
  return (await store.deleteUntaggedManifests([{ repository, digest }], options)).length === 1;
}
async function markOne(store: MetadataStore, digest: string, options: { touchedBefore: number }): Promise<boolean> {
  return (await store.markBlobsDeleting([digest], options)).length === 1;
}
async function beginOne(store: MetadataStore, digest: string, options: { touchedBefore: number; markedBefore: number }): Promise<BlobRecord | undefined> {
  return (await store.beginBlobSweeps([digest], options))[0];
}
async function finishOne(store: MetadataStore, digest: string): Promise<boolean> {
  return (await store.finishBlobSweeps([digest])).length === 1;
}

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

function manifest(repository: string, digest: string, extra: Partial<ManifestPut> = {}): ManifestPut {
  return {
    repository,
    digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    content: Buffer.from(`{"manifest":"${digest}"}`),
    blobs: [],
    children: [],
    tags: [],
    ...extra,
  };
}

/**
 * The behaviour every MetadataStore must have (SQLite, PostgreSQL). Each implementation's test
 * file calls this with a factory returning a fresh, empty store.
 */
export function metadataStoreContract(name: string, create: () => Promise<MetadataStore>): void {
  describe(`MetadataStore contract: ${name}`, () => {
    it('links blobs per repository; the registry-wide record is separate', async () => {
      const store = await create();
      assert.equal(await store.blobSize(d(1)), undefined);
      await store.addBlob('a', d(1), 10);
      assert.equal(await store.blobSize(d(1)), 10);
      assert.equal(await store.repositoryBlobSize('a', d(1)), 10);
      assert.equal(await store.repositoryBlobSize('b', d(1)), undefined);
      assert.equal(await store.linkBlob('b', d(1)), true);
      assert.equal(await store.linkBlob('b', d(2)), false, 'cannot link a blob the registry lacks');
      assert.equal(await store.repositoryBlobSize('b', d(1)), 10);
      assert.deepEqual(await store.missingBlobs('b', [d(1), d(2)]), [d(2)]);
      assert.equal(await store.unlinkBlob('b', d(1)), true);
      assert.equal(await store.unlinkBlob('b', d(1)), false);
      assert.equal(await store.repositoryBlobSize('b', d(1)), undefined);
      assert.equal(await store.repositoryBlobSize('a', d(1)), 10);
      await store.close();
    });

    it('records imports of another registry storage: begun once, repositories done, finished', async () => {
      const store = await create();
      assert.equal(await store.getStorageImport('/srv/old'), undefined);
      await store.beginStorageImport('/srv/old');
      const first = (await store.getStorageImport('/srv/old'))!;
      assert.equal(first.finishedAt, undefined);
      assert.deepEqual(first.repositories, []);
      assert.deepEqual(await store.unfinishedStorageImports(), ['/srv/old']);
      await store.markRepositoryImported('/srv/old', 'b/app');
      await store.markRepositoryImported('/srv/old', 'a');
      await store.markRepositoryImported('/srv/old', 'a');
      await store.beginStorageImport('/srv/old');
      const resumed = (await store.getStorageImport('/srv/old'))!;
      assert.equal(resumed.startedAt, first.startedAt, 'a rerun keeps the first record');
      assert.deepEqual(resumed.repositories, ['a', 'b/app']);
      await store.finishStorageImport('/srv/old');
      assert.equal(typeof (await store.getStorageImport('/srv/old'))!.finishedAt, 'number');
      assert.deepEqual(await store.unfinishedStorageImports(), []);
      assert.equal(await store.getStorageImport('/srv/other'), undefined);
      await store.close();
    });

    it('tracks upload sessions: parts and hash state recorded with a compare-and-set on their size', async () => {
      const store = await create();
      await store.createUpload({ id: 'u-1', repository: 'up', startedAt: 1000 });
      assert.deepEqual({ ...(await store.getUpload('u-1'))!, updatedAt: 0 }, { id: 'u-1', repository: 'up', size: 0, parts: [], startedAt: 1000, updatedAt: 0 });
      const state = new Uint8Array([1, 2, 3, 250]);
      assert.equal(await store.advanceUpload('u-1', { from: 0, part: { name: '0-a', size: 50 }, hashState: state }), true);
      assert.equal(await store.advanceUpload('u-1', { from: 0, part: { name: '0-b', size: 70 }, hashState: undefined }), false, 'stale offset');
      assert.equal(await store.advanceUpload('u-1', { from: 50, part: { name: '50-c', size: 5 }, hashState: undefined }), true);
      const upload = (await store.getUpload('u-1'))!;
      assert.equal(upload.size, 55);
      assert.deepEqual(upload.parts, [{ name: '0-a', size: 50 }, { name: '50-c', size: 5 }]);
      assert.equal(upload.hashState, undefined, 'a part without a hash makes the running hash unknown');
      assert.equal(await store.advanceUpload('u-1', { from: 55, part: { name: '55-d', size: 1 }, hashState: state }), true);
      assert.deepEqual([...(await store.getUpload('u-1'))!.hashState!], [...state]);
      assert.equal(await store.completeUpload('u-1', 55, d(9)), 'gone', 'the upload has 56 bytes now');
      assert.equal(await store.reserveBlob(d(9), 56), 'place');
      assert.equal(await store.completeUpload('u-1', 56, d(9)), 'done');
      assert.equal(await store.getUpload('u-1'), undefined);
      assert.equal(await store.repositoryBlobSize('up', d(9)), 56);
      assert.equal(await store.completeUpload('u-1', 56, d(9)), 'gone');
      await store.createUpload({ id: 'u-2', repository: 'up', startedAt: 1 });
      assert.deepEqual((await store.staleUploads(Date.now() + 1000, 10)).map((u) => u.id), ['u-2']);
      assert.deepEqual(await store.staleUploads(0, 10), []);
      assert.equal(await store.deleteUpload('u-2'), true);
      assert.equal(await store.deleteUpload('u-2'), false);
      await store.close();
    });

    it('grows the last part of an upload in place, only while it is still the last part at that size', async () => {
      const store = await create();
      await store.createUpload({ id: 'g-1', repository: 'grow', startedAt: 1 });
      assert.equal(await store.advanceUpload('g-1', { from: 0, part: { name: '0-a', size: 10 }, hashState: undefined }), true);
      assert.equal(await store.advanceUpload('g-1', { from: 10, part: { name: '0-a', size: 25 }, hashState: undefined, extendsLast: true }), true);
      let upload = (await store.getUpload('g-1'))!;
      assert.equal(upload.size, 25);
      assert.deepEqual(upload.parts, [{ name: '0-a', size: 25 }]);
      assert.equal(await store.advanceUpload('g-1', { from: 10, part: { name: '0-a', size: 40 }, hashState: undefined, extendsLast: true }), false, 'stale offset');
      assert.equal(await store.advanceUpload('g-1', { from: 25, part: { name: '25-b', size: 5 }, hashState: undefined }), true);
      assert.equal(await store.advanceUpload('g-1', { from: 30, part: { name: '0-a', size: 60 }, hashState: undefined, extendsLast: true }), false, 'no longer the last part');
      const state = new Uint8Array([9, 8, 7]);
      assert.equal(await store.advanceUpload('g-1', { from: 30, part: { name: '25-b', size: 12 }, hashState: state, extendsLast: true }), true);
      upload = (await store.getUpload('g-1'))!;
      assert.equal(upload.size, 37);
      assert.deepEqual(upload.parts, [{ name: '0-a', size: 25 }, { name: '25-b', size: 12 }]);
      assert.deepEqual([...upload.hashState!], [...state]);
      await store.close();
    });

    it('keeps blob lifecycle states: pending until placed, present, quarantined until placed again', async () => {
      const store = await create();
      await store.createUpload({ id: 'l-1', repository: 'life', startedAt: 1 });
      await store.advanceUpload('l-1', { from: 0, part: { name: '0-x', size: 7 }, hashState: undefined });
      assert.equal(await store.reserveBlob(d(20), 7), 'place');
      assert.equal((await store.getBlob(d(20)))?.state, 'pending');
      assert.equal(await store.blobSize(d(20)), undefined, 'a pending blob is not served');
      assert.equal(await store.linkBlob('other', d(20)), false, 'nor mounted');
      assert.equal(await store.reserveBlob(d(20), 7), 'place', 'a second commit of the same digest places too');
      assert.equal(await store.completeUpload('l-1', 7, d(20)), 'done');
      assert.equal((await store.getBlob(d(20)))?.state, 'present');
      assert.equal(await store.reserveBlob(d(20), 7), 'present', 'present bytes are only linked');

      assert.equal(await store.quarantineBlob(d(20)), true);
      assert.equal(await store.quarantineBlob(d(20)), false);
      assert.equal((await store.getBlob(d(20)))?.state, 'quarantined');
      assert.equal(await store.repositoryBlobSize('life', d(20)), undefined, 'quarantined bytes are not served');
      assert.deepEqual(await store.missingBlobs('life', [d(20)]), [d(20)]);
      assert.equal(await store.linkBlob('other', d(20)), false);

      // A commit that reserved present bytes which were then quarantined must place again.
      await store.addBlob('life', d(21), 3);
      await store.createUpload({ id: 'l-2', repository: 'life2', startedAt: 1 });
      await store.advanceUpload('l-2', { from: 0, part: { name: '0-y', size: 3 }, hashState: undefined });
      assert.equal(await store.reserveBlob(d(21), 3), 'present');
      await store.quarantineBlob(d(21));
      assert.equal(await store.completeUpload('l-2', 3, d(21)), 'retry');
      assert.equal(await store.reserveBlob(d(21), 3), 'place');
      assert.equal(await store.completeUpload('l-2', 3, d(21)), 'done');
      assert.equal(await store.repositoryBlobSize('life2', d(21)), 3);
      assert.equal(await store.repositoryBlobSize('life', d(21)), 3, 'the good bytes serve every repository that links them again');

      const listed = await store.listBlobs({ limit: 10 });
      assert.deepEqual(listed.map((b) => [b.digest, b.state]), [[d(20), 'quarantined'], [d(21), 'present']]);
      assert.deepEqual((await store.listBlobs({ after: d(20), limit: 10 })).map((b) => b.digest), [d(21)]);
      await store.close();
    });

    it('stores manifests with their exact bytes and resolves tags', async () => {
      const store = await create();
      const content = Buffer.from('{ "exact":  "bytes" }\n');
      await store.putManifest(manifest('m', d(1), { content, tags: ['v1', 'latest'], subject: d(50), artifactType: 'application/x-test' }));
      const byDigest = await store.getManifest('m', d(1));
      assert.ok(byDigest!.content.equals(content));
      assert.equal(byDigest!.subject, d(50));
      assert.equal(byDigest!.artifactType, 'application/x-test');
      assert.equal((await store.getTaggedManifest('m', 'v1'))!.digest, d(1));
      assert.equal(await store.getTaggedManifest('m', 'v2'), undefined);
      assert.equal(await store.getManifest('other', d(1)), undefined);
      assert.deepEqual(await store.missingManifests('m', [d(1), d(2)]), [d(2)]);
      await store.close();
    });

    it('searches names and descriptions best first; keeps READMEs, stars and tag details', async () => {
      const store = await create();
      await store.putManifest(manifest('team/web-server', d(1), { tags: ['v1'], description: 'A small HTTP server' }));
      await store.putManifest(manifest('library/webapp', d(2), { tags: ['latest'] }));
      await store.putManifest(manifest('tools/builder', d(3), { tags: ['1.0'], description: 'Builds things for the web' }));
      await store.putManifest(manifest('tools/untagged', d(4), { description: 'ignored: pushed without a tag' }));
      await store.addBlob('empty/repo', d(90), 1);
      const names = async (text: string) => (await store.searchRepositories({ text, offset: 0, limit: 10 })).repositories.map((r) => r.name);
      assert.deepEqual(await names('web'), ['library/webapp', 'team/web-server', 'tools/builder'], 'name matches weigh more; prefixes match');
      assert.deepEqual(await names('HTTP serv'), ['team/web-server'], 'every word, any case');
      assert.deepEqual(await names('tools/builder'), ['tools/builder']);
      assert.deepEqual(await names('ignored'), []);
      assert.deepEqual(await names('repo'), [], 'a repository without manifests is not listed');
      assert.deepEqual(await names('"*'), []);
      assert.deepEqual(await names(''), ['library/webapp', 'team/web-server', 'tools/builder', 'tools/untagged']);
      const paged = await store.searchRepositories({ text: '', offset: 1, limit: 2 });
      assert.deepEqual([paged.total, paged.repositories.map((x) => x.name)], [4, ['team/web-server', 'tools/builder']]);
      const filtered = await store.searchRepositories({ text: 'web', offset: 0, limit: 10, visible: (name) => !name.startsWith('library/') });
      assert.deepEqual([filtered.total, filtered.repositories.map((x) => x.name)], [2, ['team/web-server', 'tools/builder']]);
      const [server] = (await store.searchRepositories({ text: 'server', offset: 0, limit: 1 })).repositories;
      assert.deepEqual(server, { name: 'team/web-server', description: 'A small HTTP server', stars: 0 });

      // The newest tagged manifest sets the description; one without clears it; the README stands in.
      await store.putManifest(manifest('team/web-server', d(5), { tags: ['v2'], description: null }));
      assert.equal((await store.repositoryProfile('team/web-server'))!.description, undefined);
      assert.equal(await store.setReadme('team/web-server', '# Web server\n\nServes *static* files. [Docs](https://example.com)\n', { actor: 'alice' }), true);
      const profile = (await store.repositoryProfile('team/web-server'))!;
      assert.equal(profile.description, 'Serves static files. Docs');
      assert.match(profile.readme!, /^# Web server/);
      assert.equal(profile.readmeUpdatedBy, 'alice');
      assert.equal(profile.tagCount, 2);
      assert.ok(profile.lastPushedAt! > 0);
      assert.deepEqual(await names('static'), ['team/web-server']);
      assert.equal(await store.setReadme('no/such', 'x'), false);
      assert.equal(await store.repositoryProfile('no/such'), undefined);

      assert.equal(await store.setStar('team/web-server', 'alice', true), true);
      assert.equal(await store.setStar('team/web-server', 'alice', true), true, 'starring twice counts once');
      assert.equal(await store.setStar('team/web-server', 'bob', true), true);
      assert.equal(await store.setStar('team/web-server', 'bob', false), false);
      assert.equal(await store.setStar('no/such', 'bob', true), undefined);
      assert.equal((await store.repositoryProfile('team/web-server'))!.stars, 1);
      assert.deepEqual([...(await store.starredBy('alice', ['team/web-server', 'tools/builder']))], ['team/web-server']);
      assert.equal((await store.searchRepositories({ text: 'web-server', offset: 0, limit: 1 })).repositories[0]!.stars, 1);

      const page = (await store.listTagDetails('team/web-server', { sort: 'name', descending: true, offset: 0, limit: 1 }))!;
      assert.equal(page.total, 2);
      assert.deepEqual(page.tags.map((t) => [t.name, t.digest]), [['v2', d(5)]]);
      assert.ok(page.tags[0]!.content.length > 0);
      assert.equal(await store.listTagDetails('no/such', { sort: 'pushed', descending: false, offset: 0, limit: 5 }), undefined);
      await store.close();
    });

    it('moves tags and keeps their history', async () => {
      const store = await create();
      await store.putManifest(manifest('h', d(1), { tags: ['v'], actor: 'alice' }));
      await store.putManifest(manifest('h', d(2), { tags: ['v'], actor: 'bob' }));
      await store.putManifest(manifest('h', d(2), { tags: ['v'] }));
      assert.equal((await store.getTaggedManifest('h', 'v'))!.digest, d(2));
      assert.equal(await store.deleteTag('h', 'v', { actor: 'carol' }), d(2));
      const history = await store.tagHistory('h', 'v', 10);
      assert.deepEqual(history.map((e) => [e.action, e.digest, e.actor]), [['delete', d(2), 'carol'], ['push', d(2), 'bob'], ['push', d(1), 'alice']]);
      assert.ok(history.every((e) => typeof e.at === 'number'));
      await store.close();
    });

    it('deleting a manifest removes its tags; deleting a tag keeps the manifest', async () => {
      const store = await create();
      await store.putManifest(manifest('del', d(1), { tags: ['a', 'b'] }));
      await store.putManifest(manifest('del', d(2), { tags: ['c'] }));
      assert.equal(await store.deleteTag('del', 'c'), d(2));
      assert.equal(await store.deleteTag('del', 'c'), undefined);
      assert.ok(await store.getManifest('del', d(2)));
      assert.deepEqual((await store.deleteManifest('del', d(1)))?.sort(), ['a', 'b']);
      assert.equal(await store.deleteManifest('del', d(1)), undefined);
      assert.deepEqual(await store.listTags('del', { limit: 10 }), []);
      await store.close();
    });

    it('lists tags in byte order with keyset pages', async () => {
      const store = await create();
      const tags = ['b', 'A', 'a', '1', 'a.b', 'a-b', 'a_b', 'Z'];
      await store.putManifest(manifest('t', d(1), { tags }));
      const sorted = [...tags].sort((x, y) => (Buffer.from(x) < Buffer.from(y) ? -1 : 1));
      assert.deepEqual(await store.listTags('t', { limit: 100 }), sorted);
      assert.deepEqual(await store.listTags('t', { limit: 3 }), sorted.slice(0, 3));
      assert.deepEqual(await store.listTags('t', { limit: 3, after: sorted[2]! }), sorted.slice(3, 6));
      assert.equal(await store.listTags('nope', { limit: 3 }), undefined);
      await store.close();
    });

    it('lists referrers by subject, filtered by artifactType', async () => {
      const store = await create();
      await store.putManifest(manifest('r', d(1)));
      await store.putManifest(manifest('r', d(2), { subject: d(1), artifactType: 'application/x-sbom', annotations: { k: 'v' } }));
      await store.putManifest(manifest('r', d(3), { subject: d(1), artifactType: 'application/x-sig' }));
      await store.putManifest(manifest('other', d(4), { subject: d(1), artifactType: 'application/x-sig' }));
      const all = await store.listReferrers('r', d(1), {});
      assert.deepEqual(all.map((m) => m.digest).sort(), [d(2), d(3)]);
      const sbom = all.find((m) => m.digest === d(2))!;
      assert.deepEqual(sbom, { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d(2), size: Buffer.byteLength(`{"manifest":"${d(2)}"}`), artifactType: 'application/x-sbom', annotations: { k: 'v' } });
      assert.deepEqual((await store.listReferrers('r', d(1), { artifactType: 'application/x-sig' })).map((m) => m.digest), [d(3)]);
      assert.deepEqual(await store.listReferrers('r', d(99), {}), []);
      await store.close();
    });

    it('names the indexes that list a manifest as a child, in its repository only', async () => {
      const store = await create();
      await store.putManifest(manifest('p', d(1)));
      await store.putManifest(manifest('p', d(2), { children: [{ digest: d(1), size: 20 }] }));
      await store.putManifest(manifest('p', d(3), { children: [{ digest: d(1), size: 20 }] }));
      await store.putManifest(manifest('q', d(1)));
      assert.deepEqual(await store.manifestParents('p', d(1)), [d(2), d(3)]);
      assert.deepEqual(await store.manifestParents('q', d(1)), []);
      assert.deepEqual(await store.manifestParents('nope', d(1)), []);
      await store.close();
    });

    it('lists repositories that hold manifests, in order, with keyset pages', async () => {
      const store = await create();
      for (const name of ['z', 'a/b', 'a', 'm']) await store.putManifest(manifest(name, d(1)));
      await store.addBlob('blobs-only', d(5), 1);
      assert.deepEqual(await store.listRepositories({ limit: 10 }), ['a', 'a/b', 'm', 'z']);
      assert.deepEqual(await store.listRepositories({ limit: 2, after: 'a/b' }), ['m', 'z']);
      assert.equal(await store.repositoryExists('blobs-only'), true);
      assert.equal(await store.repositoryExists('never'), false);
      await store.close();
    });

    it('checks a manifest\'s references inside the transaction that writes it, and reports moved tags', async () => {
      const store = await create();
      await store.addBlob('refs', d(30), 10);
      await store.addBlob('refs', d(31), 20);
      await assert.rejects(
        store.putManifest(manifest('refs', d(32), { blobs: [{ digest: d(30), size: 10 }, { digest: d(33), size: 5 }], tags: ['x'] })),
        (e: unknown) => e instanceof RegistryError && e.code === 'MANIFEST_BLOB_UNKNOWN',
      );
      await assert.rejects(
        store.putManifest(manifest('refs', d(32), { blobs: [{ digest: d(30), size: 11 }] })),
        (e: unknown) => e instanceof RegistryError && e.code === 'MANIFEST_INVALID',
      );
      await assert.rejects(
        store.putManifest(manifest('refs', d(32), { children: [{ digest: d(34), size: 100 }] })),
        (e: unknown) => e instanceof RegistryError && e.code === 'MANIFEST_BLOB_UNKNOWN',
      );
      assert.equal(await store.getManifest('refs', d(32)), undefined, 'a refused push writes nothing');
      assert.equal(await store.getTaggedManifest('refs', 'x'), undefined);
      const first = await store.putManifest(manifest('refs', d(32), { blobs: [{ digest: d(30), size: 10 }, { digest: d(31), size: 20 }], tags: ['x', 'y'] }));
      assert.equal(first.totalSize, Buffer.byteLength(`{"manifest":"${d(32)}"}`) + 30);
      assert.deepEqual(first.moved, [{ tag: 'x' }, { tag: 'y' }]);
      const index = await store.putManifest(manifest('refs', d(35), { children: [{ digest: d(32), size: 99 }], tags: ['x'] }));
      assert.deepEqual(index.moved, [{ tag: 'x', previous: d(32) }]);
      // Unlinked (or quarantined) after the push: a new manifest referencing it is refused.
      await store.unlinkBlob('refs', d(31));
      await assert.rejects(store.putManifest(manifest('refs', d(36), { blobs: [{ digest: d(31), size: 20 }] })), (e: unknown) => e instanceof RegistryError && e.code === 'MANIFEST_BLOB_UNKNOWN');
      await store.quarantineBlob(d(30));
      await assert.rejects(store.putManifest(manifest('refs', d(37), { blobs: [{ digest: d(30), size: 10 }] })), (e: unknown) => e instanceof RegistryError && e.code === 'MANIFEST_BLOB_UNKNOWN');
      await store.close();
    });

    it('writes every change to the outbox in its own transaction, for consumers to follow', async () => {
      const store = await create();
      await store.addBlob('ob', d(40), 4, { actor: 'ann' });
      await store.linkBlob('ob2', d(40), { from: 'ob', actor: 'ann' });
      await store.linkBlob('ob2', d(40), { from: 'ob' });
      await store.putManifest(manifest('ob', d(41), { blobs: [{ digest: d(40), size: 4 }], tags: ['t'], actor: 'ben' }));
      await store.putManifest(manifest('ob', d(42), { tags: ['t'] }));
      await assert.rejects(store.putManifest(manifest('ob', d(43), { blobs: [{ digest: d(99), size: 1 }] })));
      await store.deleteTag('ob', 't', { actor: 'cat' });
      await store.deleteManifest('ob', d(41));
      await store.unlinkBlob('ob2', d(40));
      const entries = await store.readOutbox(0, 100);
      assert.deepEqual(
        entries.map((e) => e.event.action),
        ['blob.push', 'blob.mount', 'repository.create', 'manifest.push', 'tag.move', 'manifest.push', 'tag.move', 'tag.delete', 'manifest.delete', 'blob.delete'],
        'one entry per change; a repeated mount and a refused push record nothing',
      );
      assert.ok(entries.every((e, i) => i === 0 || e.id > entries[i - 1]!.id));
      assert.deepEqual(entries[1]!.event, { action: 'blob.mount', repository: 'ob2', digest: d(40), size: 4, from: 'ob', actor: 'ann' });
      assert.deepEqual(entries[6]!.event, { action: 'tag.move', repository: 'ob', tag: 't', digest: d(42), previous: d(41) });
      assert.deepEqual(entries[7]!.event, { action: 'tag.delete', repository: 'ob', tag: 't', digest: d(42), actor: 'cat' });
      assert.deepEqual((await store.readOutbox(entries[7]!.id, 1)).map((e) => e.event.action), ['manifest.delete']);

      assert.equal(await store.consumerPosition('webhooks'), 0);
      assert.equal(await store.advanceConsumer('webhooks', 0, entries[4]!.id), true);
      assert.equal(await store.advanceConsumer('webhooks', 0, entries[5]!.id), false, 'another process moved it first');
      assert.equal(await store.consumerPosition('webhooks'), entries[4]!.id);
      assert.equal(await store.advanceConsumer('search', 0, entries[2]!.id), true);
      assert.equal(await store.pruneOutbox(entries[9]!.id), 3, 'only what the slowest consumer has passed');
      assert.equal((await store.readOutbox(0, 100))[0]!.id, entries[3]!.id);
      await store.close();
    });

    it('keeps notification deliveries: request origins, batched entries, new consumers at the end, parking and replays', async () => {
      const store = await create();
      const request = { id: 'r-1', addr: '127.0.0.1:4000', host: 'registry:5000', method: 'PUT', useragent: 'test/1', scheme: 'http' as const };
      await store.addBlob('nd', d(50), 5, { actor: 'ann', request });
      const [pushed] = await store.readOutbox(0, 100);
      assert.deepEqual(pushed!.event, { action: 'blob.push', repository: 'nd', digest: d(50), size: 5, actor: 'ann', request });
      await store.appendOutbox([
        { at: 1000, event: { action: 'blob.pull', repository: 'nd', digest: d(50), size: 5 } },
        { at: 1001, event: { action: 'gc.collect', deleted: { blobs: 1, manifests: 0, repositories: 0 }, bytesFreed: 5, durationMs: 3 } },
      ]);
      const all = await store.readOutbox(0, 100);
      assert.deepEqual(all.map((e) => [e.event.action, e.at]).slice(1), [['blob.pull', 1000], ['gc.collect', 1001]]);
      const end = all.at(-1)!.id;
      assert.equal(await store.countOutbox(pushed!.id), 2);
      assert.equal(await store.ensureConsumer('notifications/new'), end, 'a new consumer starts at the end');
      assert.equal(await store.ensureConsumer('notifications/new'), end);
      assert.equal(await store.advanceConsumer('notifications/new', end, end), true);

      assert.equal(await store.getDeliveryStatus('hook'), undefined);
      await store.setDeliveryStatus('hook', { attempts: 2, nextAttemptAt: 5000, lastError: 'refused' });
      assert.deepEqual(await store.getDeliveryStatus('hook'), { attempts: 2, nextAttemptAt: 5000, lastError: 'refused' });
      await store.advanceConsumer('notifications/hook', 0, pushed!.id - 1);
      assert.equal(await store.parkEvent('hook', 'notifications/hook', pushed!.id + 5, pushed!, { attempts: 3 }), false, 'only from where the consumer is');
      assert.equal(await store.parkEvent('hook', 'notifications/hook', pushed!.id - 1, pushed!, { attempts: 3, lastError: 'refused' }), true);
      assert.equal(await store.consumerPosition('notifications/hook'), pushed!.id);
      assert.equal(await store.getDeliveryStatus('hook'), undefined, 'parking clears the failures');
      await store.parkEvent('hook', 'notifications/hook', pushed!.id, all[1]!, { attempts: 3 });
      const parked = await store.listParkedEvents({ endpoint: 'hook', limit: 10 });
      assert.deepEqual(parked.map((p) => [p.endpoint, p.entry, p.attempts, p.lastError]), [
        ['hook', pushed, 3, 'refused'],
        ['hook', all[1], 3, undefined],
      ]);
      assert.deepEqual(await store.listParkedEvents({ endpoint: 'other', limit: 10 }), []);
      assert.equal(await store.replayParkedEvents('hook', { ids: [parked[1]!.id] }), 1);
      assert.equal(await store.replayParkedEvents('hook', {}), 1);
      assert.deepEqual(await store.listParkedEvents({ limit: 10 }), []);
      const replays = await store.readOutbox(end, 10);
      assert.deepEqual(
        replays.map((e) => e.event),
        [
          { action: 'notification.replay', endpoint: 'hook', original: all[1], repository: 'nd' },
          { action: 'notification.replay', endpoint: 'hook', original: pushed, repository: 'nd' },
        ],
      );
      await store.close();
    });

    it('runs each job under one lease at a time, retries with a limit, and repeats recurring jobs', async () => {
      const store = await create();
      const once = await store.enqueueJob({ kind: 'test.once', payload: { n: 1 }, maxAttempts: 2 });
      assert.equal(once.state, 'ready');
      assert.deepEqual(once.payload, { n: 1 });
      const later = await store.enqueueJob({ kind: 'test.once', runAt: Date.now() + 60_000 });
      const recurring = await store.enqueueJob({ kind: 'test.recurring', key: 'every-minute', repeatMs: 60_000 });
      assert.equal((await store.enqueueJob({ kind: 'test.recurring', key: 'every-minute', repeatMs: 60_000 })).id, recurring.id, 'one job per key');

      const [a, b] = await Promise.all([
        store.claimJob({ kinds: ['test.once'], owner: 'p1', leaseMs: 60_000 }),
        store.claimJob({ kinds: ['test.once'], owner: 'p2', leaseMs: 60_000 }),
      ]);
      assert.equal(a?.id, once.id);
      assert.equal(b, undefined, 'the one due job goes to one claimer; the other is not due yet');
      assert.equal(a!.state, 'running');
      assert.equal(a!.attempts, 1);
      assert.equal(await store.renewJobLease(once.id, 'p2', 60_000), false);
      assert.equal(await store.renewJobLease(once.id, 'p1', 60_000), true);
      assert.equal(await store.finishJob(once.id, 'p2', { kind: 'done' }), false, 'only the holder ends a run');
      assert.equal(await store.finishJob(once.id, 'p1', { kind: 'retry', error: 'boom', runAt: 0 }), true);
      const retried = await store.claimJob({ kinds: ['test.once'], owner: 'p2', leaseMs: 60_000 });
      assert.equal(retried?.id, once.id);
      assert.equal(retried?.lastError, 'boom');
      assert.equal(await store.finishJob(once.id, 'p2', { kind: 'retry', error: 'boom again', runAt: 0 }), true);
      assert.equal((await store.listJobs({ states: ['failed'], limit: 10 }))[0]?.id, once.id, 'given up after maxAttempts');

      // A runner that dies: its lease runs out and another process takes the job.
      const held = await store.claimJob({ kinds: ['test.recurring'], owner: 'dead', leaseMs: 1 });
      assert.equal(held?.id, recurring.id);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const taken = await store.claimJob({ kinds: ['test.recurring'], owner: 'alive', leaseMs: 60_000 });
      assert.equal(taken?.id, recurring.id);
      assert.equal(await store.finishJob(recurring.id, 'dead', { kind: 'done' }), false);
      assert.equal(await store.finishJob(recurring.id, 'alive', { kind: 'done' }), true);
      const again = (await store.listJobs({ states: ['ready'], limit: 10 })).find((j) => j.id === recurring.id)!;
      assert.ok(again.runAt >= Date.now() + 59_000, 'a recurring job is due again after its interval');
      assert.equal(await store.claimJob({ kinds: ['test.recurring', 'test.once'], owner: 'x', leaseMs: 1000 }), undefined);
      assert.deepEqual((await store.listJobs({ limit: 10 })).map((j) => j.id), [recurring.id, later.id, once.id]);
      await store.close();
    });

    describe('garbage collection', () => {
      const later = () => Date.now() + 60_000;

      it('records when a blob was last touched: pushed, reserved, linked', async () => {
        const store = await create();
        const before = Date.now();
        await store.addBlob('t', d(1), 5);
        const first = (await store.getBlob(d(1)))!;
        assert.ok(first.touchedAt >= before);
        await new Promise((resolve) => setTimeout(resolve, 5));
        assert.equal(await store.linkBlob('t2', d(1)), true);
        assert.ok((await store.getBlob(d(1)))!.touchedAt > first.touchedAt, 'a mount touches');
        await store.close();
      });

      it('lists every repository as a graph: manifests, tags, references, uploads, links', async () => {
        const store = await create();
        await store.addBlob('g/a', d(1), 10);
        await store.addBlob('g/a', d(2), 20);
        await store.putManifest(manifest('g/a', d(10), { blobs: [{ digest: d(1), size: 10 }, { digest: d(2), size: 20 }], tags: ['v1', 'latest'] }));
        await store.putManifest(manifest('g/a', d(11), { children: [{ digest: d(10), size: 1 }], subject: d(10) }));
        await store.createUpload({ id: 'g-up', repository: 'g/b', startedAt: 1 });
        const graphs = await store.listRepositoryGraphs({ limit: 10 });
        assert.deepEqual(graphs.map((g) => g.name), ['g/a', 'g/b'], 'a repository without manifests is listed too');
        const [a, b] = graphs;
        assert.deepEqual(
          a!.manifests.map((m) => [m.digest, m.tags, m.blobs, m.children, m.subject]),
          [
            [d(10), ['latest', 'v1'], [d(1), d(2)], [], undefined],
            [d(11), [], [], [d(10)], d(10)],
          ],
        );
        assert.equal(a!.manifests[0]!.size, manifest('g/a', d(10)).content.length);
        assert.deepEqual(a!.linked, [d(1), d(2)]);
        assert.equal(a!.uploads, 0);
        assert.equal(b!.uploads, 1);
        assert.equal(b!.manifests.length, 0);
        assert.deepEqual((await store.listRepositoryGraphs({ after: 'g/a', limit: 10 })).map((g) => g.name), ['g/b']);
        await store.close();
      });

      it('deletes an untagged manifest only if nothing keeps it, checked in the same transaction', async () => {
        const store = await create();
        await store.putManifest(manifest('u', d(1), { tags: ['v1'] }));
        await store.putManifest(manifest('u', d(2)));
        await store.putManifest(manifest('u', d(3)));
        await store.putManifest(manifest('u', d(4), { children: [{ digest: d(3), size: 1 }] }));
        await store.putManifest(manifest('u', d(5), { subject: d(2) }));
        assert.equal(await deleteOne(store, 'u', d(1), { touchedBefore: later() }), false, 'tagged');
        assert.equal(await deleteOne(store, 'u', d(3), { touchedBefore: later() }), false, 'an index lists it');
        assert.equal(await deleteOne(store, 'u', d(2), { touchedBefore: later() }), false, 'a referrer names it as subject');
        assert.equal(await deleteOne(store, 'u', d(4), { touchedBefore: 0 }), false, 'pushed within the delay');
        assert.equal(await deleteOne(store, 'u', d(4), { touchedBefore: later() }), true);
        assert.equal(await deleteOne(store, 'u', d(3), { touchedBefore: later() }), true, 'its index is gone');
        assert.equal(await deleteOne(store, 'u', d(5), { touchedBefore: later() }), true);
        assert.equal(await deleteOne(store, 'u', d(2), { touchedBefore: later() }), true, 'its referrer is gone');
        assert.equal(await deleteOne(store, 'u', d(2), { touchedBefore: later() }), false, 'already gone');
        assert.deepEqual(await store.missingManifests('u', [d(1), d(2), d(3)]), [d(2), d(3)]);
        const events = (await store.readOutbox(0, 100)).map((e) => e.event).filter((e) => e.action === 'manifest.delete');
        assert.equal(events.length, 4);
        await store.close();
      });

      it('sweeps a blob only when unreferenced, untouched and marked long enough; nothing uses it while it is sweeping', async () => {
        const store = await create();
        await store.addBlob('s', d(1), 10);
        await store.addBlob('s', d(2), 20);
        await store.putManifest(manifest('s', d(10), { blobs: [{ digest: d(1), size: 10 }] }));
        assert.equal(await markOne(store, d(1), { touchedBefore: later() }), false, 'referenced');
        assert.equal(await markOne(store, d(2), { touchedBefore: 0 }), false, 'touched within the delay');
        assert.equal(await markOne(store, d(99), { touchedBefore: later() }), false, 'no such blob');
        assert.equal(await beginOne(store, d(2), { touchedBefore: later(), markedBefore: later() }), undefined, 'a present blob is marked first');
        assert.equal(await markOne(store, d(2), { touchedBefore: later() }), true);
        assert.equal((await store.getBlob(d(2)))?.state, 'deleting');
        assert.equal(await store.repositoryBlobSize('s', d(2)), undefined, 'a marked blob is not served');
        assert.equal(await beginOne(store, d(2), { touchedBefore: later(), markedBefore: 0 }), undefined, 'marked within the delay');
        const taken = await beginOne(store, d(2), { touchedBefore: later(), markedBefore: later() });
        assert.equal(taken?.size, 20);
        assert.equal((await store.getBlob(d(2)))?.state, 'sweeping');
        assert.equal(await beginOne(store, d(2), { touchedBefore: later(), markedBefore: later() }), undefined, 'one sweeper');
        assert.equal(await store.repositoryBlobSize('s', d(2)), undefined, 'not served');
        assert.equal(await store.linkBlob('t', d(2)), false, 'not mounted');
        assert.equal(await store.reserveBlob(d(2), 20), 'busy', 'a commit waits');
        await assert.rejects(
          store.putManifest(manifest('s', d(11), { blobs: [{ digest: d(2), size: 20 }] })),
          (error: unknown) => error instanceof RegistryError && error.code === 'UNAVAILABLE',
          'a manifest push waits for the decision',
        );
        await store.createUpload({ id: 's-up', repository: 's', startedAt: 1 });
        await store.advanceUpload('s-up', { from: 0, part: { name: '0-a', size: 20 }, hashState: undefined });
        assert.equal(await store.completeUpload('s-up', 20, d(2)), 'retry');
        assert.equal(await finishOne(store, d(2)), true);
        assert.equal(await finishOne(store, d(2)), false);
        assert.equal(await store.getBlob(d(2)), undefined);
        assert.deepEqual(await store.missingBlobs('s', [d(1), d(2)]), [d(2)], 'its links went with it');
        await assert.rejects(
          store.putManifest(manifest('s', d(11), { blobs: [{ digest: d(2), size: 20 }] })),
          (error: unknown) => error instanceof RegistryError && error.code === 'MANIFEST_BLOB_UNKNOWN',
        );
        assert.equal(await store.reserveBlob(d(2), 20), 'place', 'the next push puts bytes back');
        assert.equal(await store.completeUpload('s-up', 20, d(2)), 'done');
        assert.equal(await store.repositoryBlobSize('s', d(2)), 20);
        await store.close();
      });

      it('decides a batch in one commit, each row on its own condition, in the order given', async () => {
        const store = await create();
        await store.putManifest(manifest('bt', d(1)));
        await store.putManifest(manifest('bt', d(2), { subject: d(1) }));
        await store.putManifest(manifest('bt', d(3), { tags: ['v1'] }));
        const gone = await store.deleteUntaggedManifests(
          [{ repository: 'bt', digest: d(2) }, { repository: 'bt', digest: d(1) }, { repository: 'bt', digest: d(3) }, { repository: 'none', digest: d(1) }],
          { touchedBefore: later() },
        );
        assert.deepEqual(gone, [{ repository: 'bt', digest: d(2) }, { repository: 'bt', digest: d(1) }], 'the referrer first frees its subject; the tagged one stays');
        await store.addBlob('bt', d(20), 1);
        await store.addBlob('bt', d(21), 1);
        await store.putManifest(manifest('bt', d(4), { blobs: [{ digest: d(21), size: 1 }] }));
        assert.deepEqual(await store.markBlobsDeleting([d(20), d(21), d(99)], { touchedBefore: later() }), [d(20)]);
        const taken = await store.beginBlobSweeps([d(20), d(21)], { touchedBefore: later(), markedBefore: later() });
        assert.deepEqual(taken.map((blob) => blob.digest), [d(20)]);
        assert.deepEqual(await store.finishBlobSweeps([d(20), d(21)]), [d(20)]);
        assert.equal(await store.getBlob(d(20)), undefined);
        assert.equal((await store.getBlob(d(21)))?.state, 'present');
        await store.close();
      });

      it('revives a blob marked deleting: a manifest that references it, a mount, an upload', async () => {
        const store = await create();
        for (const n of [1, 2, 3]) {
          await store.addBlob('r', d(n), n);
          assert.equal(await markOne(store, d(n), { touchedBefore: later() }), true);
        }
        await store.putManifest(manifest('r', d(10), { blobs: [{ digest: d(1), size: 1 }], tags: ['v1'] }));
        assert.equal((await store.getBlob(d(1)))?.state, 'present', 'the manifest revived it in its transaction');
        assert.equal(await store.linkBlob('r2', d(2)), true);
        assert.equal((await store.getBlob(d(2)))?.state, 'present');
        assert.equal(await store.reserveBlob(d(3), 3), 'present');
        assert.equal((await store.getBlob(d(3)))?.state, 'present');
        for (const n of [1, 2, 3]) assert.equal(await beginOne(store, d(n), { touchedBefore: later(), markedBefore: later() }), undefined);
        await store.close();
      });

      it('a manifest committed before the sweep decision keeps its blob', async () => {
        const store = await create();
        await store.addBlob('k', d(1), 10);
        await store.putManifest(manifest('k', d(10), { blobs: [{ digest: d(1), size: 10 }] }));
        assert.equal(await deleteOne(store, 'k', d(10), { touchedBefore: later() }), true, 'its last reference goes');
        await store.putManifest(manifest('k', d(11), { blobs: [{ digest: d(1), size: 10 }] }));
        assert.equal(await markOne(store, d(1), { touchedBefore: later() }), false);
        assert.equal(await beginOne(store, d(1), { touchedBefore: later(), markedBefore: later() }), undefined);
        assert.equal((await store.getBlob(d(1)))?.state, 'present');
        await store.close();
      });

      it('deletes a repository only when empty: no manifests, no uploads, no links', async () => {
        const store = await create();
        await store.addBlob('e/links', d(1), 1);
        await store.createUpload({ id: 'e-up', repository: 'e/uploads', startedAt: 1 });
        await store.putManifest(manifest('e/manifests', d(10)));
        await store.createUpload({ id: 'e-gone', repository: 'e/empty', startedAt: 1 });
        await store.deleteUpload('e-gone');
        assert.equal(await store.deleteEmptyRepository('e/links', { touchedBefore: later() }), false, 'a blob is linked');
        assert.equal(await store.deleteEmptyRepository('e/uploads', { touchedBefore: later() }), false);
        assert.equal(await store.deleteEmptyRepository('e/manifests', { touchedBefore: later() }), false);
        assert.equal(await store.deleteEmptyRepository('e/none', { touchedBefore: later() }), false);
        assert.equal(await store.deleteEmptyRepository('e/empty', { touchedBefore: 0 }), false, 'created within the delay');
        assert.equal(await store.deleteEmptyRepository('e/empty', { touchedBefore: later() }), true);
        assert.equal(await store.repositoryExists('e/empty'), false);
        assert.ok((await store.readOutbox(0, 100)).some((e) => e.event.action === 'repository.delete' && e.event.repository === 'e/empty'));
        // Once its blob is swept (links go with it), the repository is empty too.
        assert.equal(await markOne(store, d(1), { touchedBefore: later() }), true);
        assert.ok(await beginOne(store, d(1), { touchedBefore: later(), markedBefore: later() }));
        assert.equal(await finishOne(store, d(1)), true);
        assert.equal(await store.deleteEmptyRepository('e/links', { touchedBefore: later() }), true);
        await store.close();
      });

      it('hands a lease to one owner at a time; a dead holder can be replaced', async () => {
        const store = await create();
        assert.deepEqual(await store.acquireLease('gc', 'a', 60_000), { acquired: true });
        const refused = await store.acquireLease('gc', 'b', 60_000);
        assert.equal(refused.acquired, false);
        assert.equal(refused.acquired === false && refused.holder, 'a');
        assert.deepEqual(await store.acquireLease('gc', 'a', 60_000), { acquired: true }, 'the holder renews');
        assert.deepEqual(await store.acquireLease('gc', 'b', 60_000, { replacing: 'a' }), { acquired: true });
        assert.equal(await store.releaseLease('gc', 'a'), false);
        assert.equal(await store.releaseLease('gc', 'b'), true);
        assert.deepEqual(await store.acquireLease('gc', 'c', 1), { acquired: true });
        await new Promise((resolve) => setTimeout(resolve, 5));
        assert.deepEqual(await store.acquireLease('gc', 'd', 60_000), { acquired: true }, 'an expired lease is free');
        await store.close();
      });

      it('keeps, with historySince, an untagged manifest that a tag moved away from since then', async () => {
        const store = await create();
        const since = Date.now() - 1;
        await store.putManifest(manifest('hist', d(1), { tags: ['v'] }));
        await store.putManifest(manifest('hist', d(2), { tags: ['v'] }));
        await store.putManifest(manifest('hist', d(3)));
        const graph = (await store.listRepositoryGraphs({ limit: 10 })).find((g) => g.name === 'hist')!;
        const node = (digest: string) => graph.manifests.find((m) => m.digest === digest)!;
        assert.ok(node(d(1)).taggedAt! >= since, 'the tag moved away from it');
        assert.ok(node(d(2)).taggedAt! >= since, 'the tag points at it');
        assert.equal(node(d(3)).taggedAt, undefined, 'never tagged');
        assert.equal(await deleteOne(store, 'hist', d(1), { touchedBefore: later(), historySince: since }), false, 'in the history since then');
        assert.equal(await deleteOne(store, 'hist', d(3), { touchedBefore: later(), historySince: since }), true, 'never in a history');
        assert.equal(await deleteOne(store, 'hist', d(1), { touchedBefore: later(), historySince: later() }), true, 'its history is older than the retention');
        await store.close();
      });
    });

    describe('immutable tags and restores', () => {
      it('lists, adds (idempotently) and removes API rules; config rules are replaced as a set', async () => {
        const store = await create();
        assert.deepEqual(await store.listImmutableTagRules(), []);
        const rule = await store.addImmutableTagRule({ repository: 'release/*', tag: 'v*' }, { actor: 'admin' });
        assert.deepEqual({ ...rule, createdAt: 0 }, { id: rule.id, repository: 'release/*', tag: 'v*', source: 'api', createdAt: 0, createdBy: 'admin' });
        assert.equal((await store.addImmutableTagRule({ repository: 'release/*', tag: 'v*' })).id, rule.id, 'the same patterns give the same rule');
        await store.replaceConfigImmutableTagRules([{ repository: 'base/**', tag: '*' }]);
        await store.replaceConfigImmutableTagRules([{ repository: 'base/**', tag: '*' }]);
        let rules = await store.listImmutableTagRules();
        assert.deepEqual(rules.map((r) => [r.source, r.repository, r.tag]), [['api', 'release/*', 'v*'], ['config', 'base/**', '*']]);
        const configId = rules[1]!.id;
        assert.equal(await store.removeImmutableTagRule(configId), false, 'config rules change only in the config');
        await store.replaceConfigImmutableTagRules([]);
        assert.equal(await store.removeImmutableTagRule(rule.id), true);
        assert.equal(await store.removeImmutableTagRule(rule.id), false);
        rules = await store.listImmutableTagRules();
        assert.deepEqual(rules, []);
        await store.close();
      });

      it('refuses, atomically, to move or delete an immutable tag; pushing the same digest again is allowed', async () => {
        const store = await create();
        await store.addImmutableTagRule({ repository: 'release/*', tag: 'v*' });
        await store.putManifest(manifest('release/app', d(1), { tags: ['v1', 'latest'] }));
        await store.putManifest(manifest('release/app', d(1), { tags: ['v1'] }));
        const denied = (error: unknown) => error instanceof RegistryError && error.code === 'DENIED' && /release\/\*:v\*/.test(error.message);
        await assert.rejects(store.putManifest(manifest('release/app', d(2), { tags: ['latest', 'v1'] })), denied);
        assert.equal(await store.getManifest('release/app', d(2)), undefined, 'nothing of the refused push was written');
        assert.equal((await store.getTaggedManifest('release/app', 'latest'))!.digest, d(1), 'not even the mutable tag moved');
        await assert.rejects(store.deleteTag('release/app', 'v1'), denied);
        await assert.rejects(store.deleteManifest('release/app', d(1)), denied);
        assert.deepEqual((await store.listTags('release/app', { limit: 10 }))!, ['latest', 'v1']);
        await store.putManifest(manifest('release/app', d(2), { tags: ['latest', 'v2'] }));
        assert.equal(await store.deleteTag('release/app', 'latest'), d(2), 'tags no rule covers move and go');
        await store.putManifest(manifest('other/app', d(3), { tags: ['v1'] }));
        await store.putManifest(manifest('other/app', d(4), { tags: ['v1'] }));
        assert.deepEqual((await store.readOutbox(0, 100)).filter((e) => e.event.action === 'tag.move' && e.event.repository === 'release/app').length, 4);
        await store.close();
      });

      it('moves a tag to a manifest of the repository, recording the previous digest and who', async () => {
        const store = await create();
        await store.putManifest(manifest('r', d(1), { tags: ['t'], actor: 'alice' }));
        await store.putManifest(manifest('r', d(2), { tags: ['t'], actor: 'bob' }));
        assert.deepEqual(await store.moveTag('r', 't', d(1), { actor: 'carol' }), { previous: d(2), moved: true });
        assert.deepEqual(await store.moveTag('r', 't', d(1)), { previous: d(1), moved: false });
        assert.equal((await store.getTaggedManifest('r', 't'))!.digest, d(1));
        const history = await store.tagHistory('r', 't', 10);
        assert.deepEqual(history.map((e) => [e.action, e.digest, e.previous, e.actor]), [
          ['push', d(1), d(2), 'carol'],
          ['push', d(2), d(1), 'bob'],
          ['push', d(1), undefined, 'alice'],
        ]);
        await assert.rejects(store.moveTag('r', 't', d(9)), (e: unknown) => e instanceof RegistryError && e.code === 'MANIFEST_UNKNOWN');
        await assert.rejects(store.moveTag('nowhere', 't', d(1)), (e: unknown) => e instanceof RegistryError && e.code === 'MANIFEST_UNKNOWN');
        assert.equal(await store.deleteTag('r', 't'), d(1));
        assert.deepEqual(await store.moveTag('r', 't', d(2)), { moved: true }, 'a deleted tag can be restored');
        await store.addImmutableTagRule({ repository: '**', tag: 't' });
        await assert.rejects(store.moveTag('r', 't', d(1)), (e: unknown) => e instanceof RegistryError && e.code === 'DENIED');
        assert.equal((await store.getTaggedManifest('r', 't'))!.digest, d(2));
        const moves = (await store.readOutbox(0, 100)).filter((e) => e.event.action === 'tag.move');
        assert.deepEqual(moves.at(-1)!.event, { action: 'tag.move', repository: 'r', tag: 't', digest: d(2), restore: true });
        await store.close();
      });
    });

    describe('quotas and usage', () => {
      /** The DENIED a quota refusal throws, with its numbers. */
      const denied = (detail: Record<string, unknown>) => (error: unknown) => {
        assert.ok(error instanceof RegistryError, String(error));
        assert.equal(error.code, 'DENIED');
        assert.deepEqual(error.detail, detail);
        assert.match(error.message, new RegExp(`quota "${String(detail.quota)}" exceeded: limit .+, usage .+, this push adds .+`));
        return true;
      };

      it('usage is the distinct blobs linked to a repository plus its manifests, a shared blob counting in each repository', async () => {
        const store = await create();
        await store.addBlob('ns/a', d(1), 100);
        await store.addBlob('ns/a', d(1), 100);
        await store.addBlob('ns/a', d(2), 20);
        assert.equal(await store.linkBlob('ns/b', d(1)), true);
        const put = manifest('ns/a', d(50), { blobs: [{ digest: d(1), size: 100 }, { digest: d(2), size: 20 }], tags: ['v1'] });
        await store.putManifest(put);
        await store.putManifest({ ...put, tags: ['v2'] });
        await store.addBlob('other', d(3), 1);
        const m = put.content.length;
        assert.deepEqual(await store.repositoryUsage({ limit: 10 }), [
          { repository: 'ns/a', bytes: 120 + m, blobs: 2, manifests: 1 },
          { repository: 'ns/b', bytes: 100, blobs: 1, manifests: 0 },
          { repository: 'other', bytes: 1, blobs: 1, manifests: 0 },
        ]);
        assert.deepEqual((await store.repositoryUsage({ prefix: 'ns/', limit: 1 })).map((u) => u.repository), ['ns/a'], 'largest first, at most limit');
        assert.deepEqual(await store.repositoryUsage({ prefix: 'none/', limit: 10 }), []);
        // Deletes free usage.
        await store.deleteManifest('ns/a', d(50));
        assert.equal(await store.unlinkBlob('ns/a', d(1)), true);
        assert.deepEqual(await store.repositoryUsage({ prefix: 'ns/a', limit: 10 }), [{ repository: 'ns/a', bytes: 20, blobs: 1, manifests: 0 }]);
        await store.close();
      });

      it('keeps rules from the API and from configuration side by side, each with its usage', async () => {
        const store = await create();
        await store.addBlob('team/app', d(1), 300);
        await store.addBlob('team/lib', d(2), 200);
        await store.addBlob('teamx/app', d(3), 50);
        await store.setQuota('team/', 1000);
        await store.setQuota('team/', 900);
        await store.setQuota('team/app', 400);
        await store.replaceConfigQuotas([{ name: 'team/', limit: 2000 }, { name: 'old/', limit: 1 }]);
        await store.replaceConfigQuotas([{ name: 'team/', limit: 2000 }]);
        assert.deepEqual(await store.listQuotas(), [
          { name: 'team/', limit: 900, source: 'api', scope: 'namespace', usage: 500 },
          { name: 'team/', limit: 2000, source: 'config', scope: 'namespace', usage: 500 },
          { name: 'team/app', limit: 400, source: 'api', scope: 'repository', usage: 300 },
        ]);
        assert.equal(await store.removeQuota('team/app'), true);
        assert.equal(await store.removeQuota('team/app'), false);
        assert.equal(await store.removeQuota('nothing'), false);
        assert.deepEqual((await store.listQuotas()).map((q) => `${q.name}:${q.source}`), ['team/:api', 'team/:config']);
        await store.close();
      });

      it('checkQuota answers before an upload: the tightest rule a new blob would exceed, nothing for a blob already linked', async () => {
        const store = await create();
        await store.addBlob('team/app', d(1), 300);
        await store.addBlob('team/lib', d(2), 200);
        assert.equal(await store.checkQuota('team/app', { bytes: 10_000 }), undefined, 'no rule, no limit');
        await store.setQuota('team/', 1000);
        await store.replaceConfigQuotas([{ name: 'team/app', limit: 600 }]);
        assert.equal(await store.checkQuota('team/app', { bytes: 300 }), undefined, 'exactly at the limit fits');
        assert.deepEqual(await store.checkQuota('team/app', { bytes: 301 }), { name: 'team/app', scope: 'repository', limit: 600, usage: 300, adds: 301 });
        assert.deepEqual(await store.checkQuota('team/new', { bytes: 501 }), { name: 'team/', scope: 'namespace', limit: 1000, usage: 500, adds: 501 });
        assert.equal(await store.checkQuota('teamx/app', { bytes: 5000 }), undefined, 'team/ does not cover teamx/');
        assert.equal(await store.checkQuota('team/app', { bytes: 5000, digest: d(1) }), undefined, 'already linked: adds nothing');
        await store.close();
      });

      it('refuses a link, a mount or an upload commit over a quota inside its transaction, changing nothing', async () => {
        const store = await create();
        await store.addBlob('src', d(1), 300);
        await store.addBlob('team/app', d(2), 500);
        await store.setQuota('team/', 700);
        const before = (await store.readOutbox(0, 1000)).length;
        await assert.rejects(store.linkBlob('team/other', d(1), { from: 'src' }), denied({ quota: 'team/', scope: 'namespace', limit: 700, usage: 500, adds: 300 }));
        await assert.rejects(store.addBlob('team/app', d(3), 201), denied({ quota: 'team/', scope: 'namespace', limit: 700, usage: 500, adds: 201 }));
        assert.equal(await store.repositoryBlobSize('team/other', d(1)), undefined);
        assert.equal(await store.repositoryExists('team/other'), false, 'no repository left behind');
        assert.equal(await store.getBlob(d(3)), undefined);
        await store.createUpload({ id: 'q-1', repository: 'team/app', startedAt: 1 });
        assert.equal(await store.advanceUpload('q-1', { from: 0, part: { name: '0-a', size: 300 }, hashState: undefined }), true);
        assert.equal(await store.reserveBlob(d(1), 300), 'present');
        await assert.rejects(store.completeUpload('q-1', 300, d(1)), denied({ quota: 'team/', scope: 'namespace', limit: 700, usage: 500, adds: 300 }));
        assert.equal((await store.getUpload('q-1'))?.size, 300, 'the upload is left as it was');
        assert.equal(await store.repositoryBlobSize('team/app', d(1)), undefined);
        assert.equal((await store.readOutbox(0, 1000)).length, before, 'nothing recorded');
        // Linking what is already linked adds nothing and is never refused, even over the limit.
        await store.setQuota('team/', 10);
        assert.equal(await store.linkBlob('team/app', d(2)), true);
        await store.addBlob('team/app', d(2), 500);
        // Raising the limit (or removing the rule) takes effect at once.
        await store.removeQuota('team/');
        assert.equal(await store.completeUpload('q-1', 300, d(1)), 'done');
        await store.close();
      });

      it('lets exactly one of two links racing for the last room of a quota in', async () => {
        const store = await create();
        await store.addBlob('src', d(1), 60);
        await store.addBlob('src', d(2), 60);
        await store.setQuota('race/', 100);
        const outcomes = await Promise.allSettled([store.linkBlob('race/a', d(1)), store.linkBlob('race/b', d(2))]);
        assert.deepEqual(outcomes.map((o) => o.status).sort(), ['fulfilled', 'rejected']);
        assert.deepEqual((await store.repositoryUsage({ prefix: 'race/', limit: 10 })).map((u) => u.bytes), [60]);
        await store.close();
      });

      it('refuses a manifest over a quota atomically: no manifest, tag or revival', async () => {
        const store = await create();
        await store.addBlob('team/app', d(1), 100);
        const put = manifest('team/app', d(60), { blobs: [{ digest: d(1), size: 100 }], tags: ['v1'] });
        await store.setQuota('team/app', 100 + put.content.length - 1);
        await assert.rejects(store.putManifest(put), denied({ quota: 'team/app', scope: 'repository', limit: 100 + put.content.length - 1, usage: 100, adds: put.content.length }));
        assert.equal(await store.getManifest('team/app', d(60)), undefined);
        assert.deepEqual(await store.listTags('team/app', { limit: 10 }), []);
        await store.setQuota('team/app', 100 + put.content.length);
        await store.putManifest(put);
        // Over the limit now (lowered), a push that adds nothing — a tag on a manifest already there — still works.
        await store.setQuota('team/app', 1);
        const result = await store.putManifest({ ...put, tags: ['v2'] });
        assert.deepEqual(result.moved, [{ tag: 'v2' }]);
        await store.close();
      });
    });
  });
}
