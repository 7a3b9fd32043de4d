import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import yazl from 'yazl';
import { inventoryToCycloneDx } from '../src/scan/cyclonedx.js';
import { inventoryLayers } from '../src/scan/inventory.js';
import { DEFAULT_SCAN_LIMITS, ScanError } from '../src/scan/scan-error.js';
import { gzip, layerTar, memoryLayers, zstd } from './support/scan-images.js';
import { ok, requireTool } from './support/tools.js';

const work = mkdtempSync(join(tmpdir(), 'wharf-scan-inventory-'));
after(() => rmSync(work, { recursive: true, force: true }));

const ALPINE_INSTALLED = `C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
o:musl
T:the musl c library

C:Q1def=
P:busybox-binsh
V:1.36.1-r5
A:x86_64
o:busybox

`;

const NPM_LOCK = JSON.stringify({
  name: 'app',
  lockfileVersion: 3,
  packages: {
    '': { name: 'app', version: '1.0.0' },
    'node_modules/lodash': { version: '4.17.20' },
    'node_modules/@babel/core': { version: '7.22.0' },
    'node_modules/@babel/core/node_modules/semver': { version: '6.3.0' },
    'node_modules/linked': { link: true, resolved: '../linked' },
  },
});

function jar(entries: Record<string, Buffer | string>): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const [name, data] of Object.entries(entries)) zip.addBuffer(Buffer.isBuffer(data) ? data : Buffer.from(data), name);
  zip.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

describe('inventory from layers', () => {
  it("lists this machine's dpkg packages from a gzip layer, with os-release through a symlink", async () => {
    const status = readFileSync('/var/lib/dpkg/status');
    const layer = await layerTar([
      { name: 'usr/lib/os-release', data: readFileSync('/usr/lib/os-release') },
      { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
      { name: 'var/lib/dpkg/status', data: status },
    ]);
    const inventory = await inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:test' });
    const expected = (await ok('dpkg-query', ['-W', '-f', '${db:Status-Abbrev}|${Package}|${Version}\n']))
      .split('\n')
      .filter((l) => l.startsWith('ii'))
      .map((l) => l.split('|').slice(1).join(' '));
    const found = inventory.packages.filter((p) => p.type === 'deb').map((p) => `${p.name} ${p.version}`);
    assert.deepEqual([...new Set(found)].sort(), [...new Set(expected)].sort());
    assert.equal(inventory.os?.id, 'debian');
    assert.ok(inventory.packages.every((p) => p.purl.startsWith('pkg:deb/debian/')));
    const libc = inventory.packages.find((p) => p.name === 'libc6')!;
    assert.equal(libc.source?.name, 'glibc');
    assert.match(libc.purl, /upstream=glibc/);
    assert.match(libc.purl, /distro=debian-12/);
  });

  it('applies whiteouts and opaque directories across gzip and zstd layers', async () => {
    requireTool('zstd');
    const lower = await layerTar([
      { name: 'etc/os-release', data: 'ID=alpine\nVERSION_ID=3.18.4\nPRETTY_NAME="Alpine Linux v3.18"\n' },
      { name: 'lib/apk/db/installed', data: ALPINE_INSTALLED },
      { name: 'srv/old/package-lock.json', data: NPM_LOCK },
      { name: 'opt/py/', type: 'directory' },
      { name: 'opt/py/requests-2.25.0.dist-info/METADATA', data: 'Metadata-Version: 2.1\nName: requests\nVersion: 2.25.0\n\nbody' },
    ]);
    const upper = await layerTar([
      { name: 'srv/.wh.old' },
      { name: 'opt/py/.wh..wh..opq' },
      { name: 'opt/py/Django-4.2.1.dist-info/METADATA', data: 'Metadata-Version: 2.1\nName: Django\nVersion: 4.2.1\n' },
      { name: 'app/package-lock.json', data: NPM_LOCK },
      { name: 'usr/lib/python3/dist-packages/PyYAML.egg-info', data: 'Metadata-Version: 1.1\nName: PyYAML\nVersion: 5.3.1\n' },
    ]);
    const inventory = await inventoryLayers(memoryLayers([gzip(lower), zstd(upper)]), { digest: 'sha256:test' });
    const list = inventory.packages.map((p) => `${p.type}:${p.namespace ? `${p.namespace}/` : ''}${p.name}@${p.version} ${p.location}`).sort();
    assert.deepEqual(list, [
      'apk:busybox-binsh@1.36.1-r5 /lib/apk/db/installed',
      'apk:musl@1.2.4-r2 /lib/apk/db/installed',
      'npm:@babel/core@7.22.0 /app/package-lock.json',
      'npm:lodash@4.17.20 /app/package-lock.json',
      'npm:semver@6.3.0 /app/package-lock.json',
      'pypi:django@4.2.1 /opt/py/Django-4.2.1.dist-info/METADATA',
      'pypi:pyyaml@5.3.1 /usr/lib/python3/dist-packages/PyYAML.egg-info',
    ]);
    const busybox = inventory.packages.find((p) => p.name === 'busybox-binsh')!;
    assert.equal(busybox.source?.name, 'busybox');
    assert.equal(busybox.purl, 'pkg:apk/alpine/busybox-binsh@1.36.1-r5?arch=x86_64&distro=alpine-3.18.4&upstream=busybox');
    assert.equal(inventory.packages.find((p) => p.name === 'core')!.purl, 'pkg:npm/%40babel/core@7.22.0');
  });

  it('reads an rpmdb.sqlite written by rpm', async () => {
    requireTool('rpmbuild');
    const top = join(work, 'rpmbuild');
    mkdirSync(join(top, 'SPECS'), { recursive: true });
    const spec = (name: string, version: string, release: string, epoch?: number) =>
      [`Name: ${name}`, `Version: ${version}`, `Release: ${release}`, ...(epoch ? [`Epoch: ${epoch}`] : []), 'Summary: test', 'License: MIT', 'BuildArch: noarch', '%description', 'test', '%files', ''].join('\n');
    const packages = [
      ['openssl-libs', '3.0.7', '24.el9', 1],
      ['zlib', '1.2.11', '40.el9'],
    ] as const;
    const dbpath = join(work, 'rpmdb');
    mkdirSync(dbpath);
    await ok('rpm', ['--dbpath', dbpath, '--initdb']);
    for (const [name, version, release, epoch] of packages) {
      writeFileSync(join(top, 'SPECS', `${name}.spec`), spec(name, version, release, epoch));
      await ok('rpmbuild', ['--define', `_topdir ${top}`, '-bb', join(top, 'SPECS', `${name}.spec`)]);
      await ok('rpm', ['--dbpath', dbpath, '-i', '--justdb', '--nodeps', '--nosignature', join(top, 'RPMS', 'noarch', `${name}-${version}-${release}.noarch.rpm`)]);
    }
    const expected = (await ok('rpm', ['--dbpath', dbpath, '-qa', '--qf', '%{NAME} %{VERSION}-%{RELEASE} %{EPOCHNUM}\n'])).trim().split('\n').sort();
    const layer = await layerTar([
      { name: 'etc/os-release', data: 'ID="rhel"\nVERSION_ID="9.2"\n' },
      { name: 'var/lib/rpm/rpmdb.sqlite', data: readFileSync(join(dbpath, 'rpmdb.sqlite')) },
    ]);
    const inventory = await inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:test' });
    assert.deepEqual(inventory.packages.map((p) => `${p.name} ${p.version} ${p.epoch ?? 0}`).sort(), expected);
    assert.equal(inventory.packages.find((p) => p.name === 'openssl-libs')!.purl, 'pkg:rpm/rhel/openssl-libs@3.0.7-24.el9?arch=noarch&distro=rhel-9.2&epoch=1');
  });

  it('reads the module list of a Go binary built here', async () => {
    requireTool('go');
    const dir = join(work, 'goprog');
    mkdirSync(join(dir, 'lib'), { recursive: true });
    writeFileSync(join(dir, 'go.mod'), 'module example.com/prog\n\ngo 1.19\n\nrequire example.com/lib v1.2.3\n\nreplace example.com/lib => ./lib\n');
    writeFileSync(join(dir, 'main.go'), 'package main\n\nimport "example.com/lib"\n\nfunc main() { lib.Hello() }\n');
    writeFileSync(join(dir, 'lib', 'go.mod'), 'module example.com/lib\n\ngo 1.19\n');
    writeFileSync(join(dir, 'lib', 'lib.go'), 'package lib\n\nfunc Hello() { println("hi") }\n');
    const env = { ...process.env, GOFLAGS: '-mod=mod -buildvcs=false', GOPROXY: 'off', GOTOOLCHAIN: 'local', GOCACHE: join(work, 'gocache'), GOPATH: join(work, 'gopath'), CGO_ENABLED: '0' };
    await ok('go', ['build', '-o', 'prog', '.'], { cwd: dir, env });
    const goVersion = (await ok('go', ['env', 'GOVERSION'], { env })).trim();
    const layer = await layerTar([{ name: 'usr/local/bin/prog', data: readFileSync(join(dir, 'prog')), mode: 0o755 }]);
    const inventory = await inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:test' });
    const list = inventory.packages.map((p) => `${p.namespace ? `${p.namespace}/` : ''}${p.name}@${p.version}`).sort();
    assert.deepEqual(list, ['example.com/lib@v1.2.3', `stdlib@v${goVersion.replace(/^go/, '')}`]);
    assert.equal(inventory.packages.find((p) => p.name === 'lib')!.purl, 'pkg:golang/example.com/lib@v1.2.3');
  });

  it('reads Maven coordinates from jars, nested jars and exploded pom.properties', async () => {
    const pom = (g: string, a: string, v: string) => `#Generated by Maven\ngroupId=${g}\nartifactId=${a}\nversion=${v}\n`;
    const inner = await jar({ 'META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties': pom('org.apache.logging.log4j', 'log4j-core', '2.14.1') });
    const fat = await jar({
      'META-INF/maven/com.example/app/pom.properties': pom('com.example', 'app', '1.0.0'),
      'BOOT-INF/lib/log4j-core-2.14.1.jar': inner,
    });
    const layer = await layerTar([
      { name: 'app/app.jar', data: fat },
      { name: 'srv/webapp/META-INF/maven/org.yaml/snakeyaml/pom.properties', data: pom('org.yaml', 'snakeyaml', '1.33') },
    ]);
    const inventory = await inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:test' });
    assert.deepEqual(inventory.packages.map((p) => p.purl).sort(), [
      'pkg:maven/com.example/app@1.0.0',
      'pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1',
      'pkg:maven/org.yaml/snakeyaml@1.33',
    ]);
    assert.equal(inventory.packages.find((p) => p.name === 'log4j-core')!.location, '/app/app.jar!/BOOT-INF/lib/log4j-core-2.14.1.jar');
  });

  it('writes CycloneDX 1.5 JSON with a purl per package', async () => {
    const layer = await layerTar([
      { name: 'etc/os-release', data: 'ID=alpine\nVERSION_ID=3.18.4\n' },
      { name: 'lib/apk/db/installed', data: ALPINE_INSTALLED },
    ]);
    const inventory = await inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:abc', platform: { os: 'linux', architecture: 'amd64' } });
    const bom = JSON.parse(inventoryToCycloneDx(inventory, { name: 'library/alpine:3.18' })) as {
      bomFormat: string;
      specVersion: string;
      metadata: { component: { type: string; name: string } };
      components: Array<{ type: string; name: string; version: string; purl?: string }>;
    };
    assert.equal(bom.bomFormat, 'CycloneDX');
    assert.equal(bom.specVersion, '1.5');
    assert.equal(bom.metadata.component.type, 'container');
    assert.equal(bom.metadata.component.name, 'library/alpine:3.18');
    assert.deepEqual(bom.components.map((c) => [c.type, c.name, c.version, c.purl]), [
      ['operating-system', 'alpine', '3.18.4', undefined],
      ['library', 'musl', '1.2.4-r2', 'pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4'],
      ['library', 'busybox-binsh', '1.36.1-r5', 'pkg:apk/alpine/busybox-binsh@1.36.1-r5?arch=x86_64&distro=alpine-3.18.4&upstream=busybox'],
    ]);
  });
});

describe('bounded memory', () => {
  it('streams a 512 MiB layer without holding it: memory grows by far less than the layer', async () => {
    // The layer is made on the fly (tar, then gzip) as the scanner reads it: neither side holds it.
    const SIZE = 512 * 1024 ** 2;
    const makeLayer = () => {
      const pack = tar.pack();
      void (async () => {
        pack.entry({ name: 'var/lib/dpkg/status', mode: 0o644 }, 'Package: x\nStatus: install ok installed\nVersion: 1.0\n\n');
        const entry = pack.entry({ name: 'opt/big.bin', size: SIZE, mode: 0o755 }) as unknown as NodeJS.WritableStream;
        const chunk = Buffer.alloc(1024 ** 2, 0x41);
        for (let written = 0; written < SIZE; written += chunk.length) {
          if (!entry.write(chunk)) await new Promise<void>((resolve) => entry.once('drain', () => resolve()));
        }
        entry.end();
        pack.finalize();
      })();
      return pack.pipe(createGzip({ level: 1 }));
    };
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const inventory = await inventoryLayers([{ digest: 'sha256:big', size: 1024 ** 2, open: async () => makeLayer() }], { digest: 'sha256:big' });
      assert.deepEqual(inventory.packages.map((p) => p.name), ['x']);
    } finally {
      clearInterval(sampler);
    }
    assert.ok(peak - before < 128 * 1024 ** 2, `RSS grew by ${Math.round((peak - before) / 1024 ** 2)} MiB while scanning a 512 MiB layer`);
  });
});

describe('hostile layers fail cleanly with a reason', () => {
  const small = { ...DEFAULT_SCAN_LIMITS, maxLayerBytes: 8 * 1024 ** 2, ratioFloorBytes: 1024 ** 2, maxPackageDbBytes: 1024 ** 2, maxArchiveExpandedBytes: 1024 ** 2 };

  it('refuses a tar name that climbs out of the root', async () => {
    const layer = await layerTar([{ name: '../../etc/passwd', data: 'root:x:0:0' }]);
    await assert.rejects(inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:t' }), (e: Error) => e instanceof ScanError && /leaves the root/.test(e.message));
  });

  it('stops a gzip bomb at the layer bound', async () => {
    const bomb = gzip(await layerTar([{ name: 'zeros', data: Buffer.alloc(32 * 1024 ** 2) }]));
    await assert.rejects(inventoryLayers(memoryLayers([bomb]), { digest: 'sha256:t' }, small), (e: Error) => e instanceof ScanError && /decompression bomb/.test(e.message));
  });

  it('stops a zstd bomb at the layer bound', async () => {
    requireTool('zstd');
    const bomb = zstd(await layerTar([{ name: 'zeros', data: Buffer.alloc(32 * 1024 ** 2) }]));
    await assert.rejects(inventoryLayers(memoryLayers([bomb]), { digest: 'sha256:t' }, small), (e: Error) => e instanceof ScanError && /decompression bomb/.test(e.message));
  });

  it('stops a zip bomb inside a jar', async () => {
    const bomb = await jar({ 'BOOT-INF/lib/big.jar': Buffer.alloc(4 * 1024 ** 2) });
    const layer = await layerTar([{ name: 'app.jar', data: bomb }]);
    await assert.rejects(inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:t' }, small), (e: Error) => e instanceof ScanError && /zip bomb/.test(e.message));
  });

  it('fails on a dpkg status over its bound', async () => {
    const huge = 'Package: x\nStatus: install ok installed\nVersion: 1\n\n'.repeat(40_000);
    const layer = await layerTar([{ name: 'var/lib/dpkg/status', data: huge }]);
    await assert.rejects(inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:t' }, small), (e: Error) => e instanceof ScanError && /var\/lib\/dpkg\/status .* over the .* limit/.test(e.message));
  });

  it('ends a symlink loop without hanging', async () => {
    const layer = await layerTar([
      { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
      { name: 'usr/lib/os-release', type: 'symlink', linkname: '/etc/os-release' },
      { name: 'lib/apk/db/installed', data: ALPINE_INSTALLED },
    ]);
    const inventory = await inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:t' });
    assert.equal(inventory.os, undefined);
    assert.equal(inventory.packages.length, 2);
  });

  it('fails on a truncated layer and on a source that breaks mid-way, without hanging', async () => {
    const whole = gzip(await layerTar([{ name: 'lib/apk/db/installed', data: ALPINE_INSTALLED }, { name: 'opt/pad', data: Buffer.alloc(256 * 1024, 1) }]));
    const truncated = whole.subarray(0, Math.floor(whole.length / 2));
    await assert.rejects(inventoryLayers(memoryLayers([truncated]), { digest: 'sha256:t' }), (e: Error) => e instanceof ScanError && /cannot be read/.test(e.message));
    const breaking = {
      digest: 'sha256:broken',
      size: whole.length,
      open: async () =>
        Readable.from(
          (async function* () {
            yield whole.subarray(0, 1000);
            throw new Error('connection reset');
          })(),
        ),
    };
    await assert.rejects(inventoryLayers([breaking], { digest: 'sha256:t' }), (e: Error) => e instanceof ScanError && /connection reset/.test(e.message));
  });

  it('skips, with a warning, packages no purl can name and files that do not parse', async () => {
    const layer = await layerTar([
      { name: 'app/node_modules/empty/package.json', data: JSON.stringify({ name: '', version: '1.0.0' }) },
      { name: 'app/node_modules/broken/package.json', data: '{not json' },
      { name: 'app/node_modules/fine/package.json', data: JSON.stringify({ name: 'fine', version: '2.0.0' }) },
    ]);
    const inventory = await inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:t' });
    assert.deepEqual(inventory.packages.map((p) => p.purl), ['pkg:npm/fine@2.0.0']);
    assert.equal(inventory.warnings.length, 2);
    assert.match(inventory.warnings.join('\n'), /broken\/package\.json could not be read/);
    assert.match(inventory.warnings.join('\n'), /empty\/package\.json: package "" skipped/);
  });

  it('fails on a layer that is not an archive', async () => {
    await assert.rejects(inventoryLayers(memoryLayers([gzip(Buffer.from('not a tar archive at all'.repeat(100)))]), { digest: 'sha256:t' }), (e: Error) => e instanceof ScanError && /cannot be read/.test(e.message));
  });
});
