import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { metadataStoreContract } from './support/metadata-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'wharf-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

metadataStoreContract('sqlite', async () => new SqliteMetadataStore({ path: join(dir, `contract-${(n += 1)}.db`) }));

describe('SQLite specifics', () => {
  it('two connections (two processes) share one database file', async () => {
    const path = join(dir, 'shared.db');
    const a = new SqliteMetadataStore({ path });
    const b = new SqliteMetadataStore({ path });
    await a.addBlob('shared', `sha256:${'1'.repeat(64)}`, 5);
    assert.equal(await b.repositoryBlobSize('shared', `sha256:${'1'.repeat(64)}`), 5);
    await a.close();
    await b.close();
  });

  it('reopens an existing database without migrating it again', async () => {
    const path = join(dir, 'reopen.db');
    const first = new SqliteMetadataStore({ path });
    await first.addBlob('kept', `sha256:${'2'.repeat(64)}`, 7);
    await first.close();
    const second = new SqliteMetadataStore({ path });
    assert.equal(await second.blobSize(`sha256:${'2'.repeat(64)}`), 7);
    await second.close();
  });
});
