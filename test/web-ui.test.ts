import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { raw } from './support/http.js';
import { OCI_MANIFEST, blob, configBlob, imageIndex, imageManifest, type Blob } from './support/oci-fixtures.js';
import { requireTool } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const SCREENSHOTS = fileURLToPath(new URL('../test-output/ui/', import.meta.url));
const ALICE = { Authorization: basic('alice', 'alice-pw') };
const PWNED = 'window.__pwned = (window.__pwned || 0) + 1';
const HOSTILE = [`<script>${PWNED}</script>`, `"><img src=x onerror="${PWNED}">`, `'><svg onload=${PWNED}>`, `javascript:${PWNED}`].join(' ');
const HOSTILE_README = `# Hostile <script>${PWNED}</script>

<img src="x" onerror="${PWNED}"> <iframe src="javascript:${PWNED}"></iframe>

[click me](javascript:${PWNED}) <a href="javascript:${PWNED}">raw link</a> <b onmouseover="${PWNED}">bold</b>

<div style="background:url(javascript:x)">styled</div> Plain words stay.
`;

async function pushBlobs(url: string, repository: string, blobs: Blob[]): Promise<void> {
  for (const b of blobs) {
    const res = await raw(url, 'POST', `/v2/${repository}/blobs/uploads/?digest=${b.digest}`, { headers: { ...ALICE, 'Content-Type': 'application/octet-stream' }, body: b.data });
    assert.equal(res.status, 201, res.body.toString());
  }
}

async function putManifest(url: string, repository: string, reference: string, manifest: Blob, mediaType = OCI_MANIFEST): Promise<void> {
  const res = await raw(url, 'PUT', `/v2/${repository}/manifests/${reference}`, { headers: { ...ALICE, 'Content-Type': mediaType }, body: manifest.data });
  assert.equal(res.status, 201, res.body.toString());
}

/** An image with two layers, a history as docker build writes it, labels and annotations. */
async function pushImage(url: string, repository: string, tag: string, options: { arch?: string; annotations?: Record<string, string>; labels?: Record<string, string> } = {}): Promise<Blob> {
  const layers = [blob(`base layer ${repository} ${tag} ${options.arch} ${Math.random()}`), blob(`app layer ${'x'.repeat(3000)} ${Math.random()}`)];
  const config = configBlob({
    architecture: options.arch ?? 'amd64',
    created: '2026-01-02T03:04:05Z',
    config: { Labels: { 'org.opencontainers.image.source': 'https://example.com/src', ...options.labels }, Cmd: ['/bin/app'] },
    history: [
      { created: '2026-01-01T00:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:base in /' },
      { created: '2026-01-01T00:00:01Z', created_by: '/bin/sh -c #(nop)  ENV PATH=/bin', empty_layer: true },
      { created: '2026-01-02T03:04:05Z', created_by: 'COPY app /bin/app # buildkit', comment: 'buildkit.dockerfile.v0' },
    ],
  });
  await pushBlobs(url, repository, [...layers, config]);
  const manifest = imageManifest(config, layers, options.annotations ? { annotations: options.annotations } : {});
  await putManifest(url, repository, tag, manifest);
  return manifest;
}

describe('the web UI in a real browser (chromium via playwright-core)', () => {
  let dir: string;
  let wharf: WharfProcess;
  let browser: Browser;
  let alice: BrowserContext;
  const problems: string[] = [];
  let index: Blob;
  let amd64: Blob;

  /** Every console error, page error, failed request and error answer on a watched page is a problem. */
  function watch(page: Page): Page {
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => problems.push(`failed: ${request.url()} ${request.failure()?.errorText}`));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`${response.status()}: ${response.url()}`);
    });
    return page;
  }

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  before(async () => {
    requireTool('chromium');
    mkdirSync(SCREENSHOTS, { recursive: true });
    dir = mkdtempSync(join(tmpdir(), 'wharf-ui-'));
    writeHtpasswd(join(dir, 'htpasswd'), { alice: 'alice-pw', bob: 'bob-pw' });
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1
storage:
  delete:
    enabled: true
auth:
  htpasswd:
    realm: ui-test
    path: ${join(dir, 'htpasswd')}
  policy:
    public: ["library/**", "inject/**"]
    rules:
      - subject: user:alice
        repository: "**"
        actions: [pull, push, delete]
      - subject: user:bob
        repository: "big/**"
        actions: [pull]
immutable:
  rules: ["library/redis:stable"]
`,
    );
    wharf = await startWharf({ args: [join(dir, 'config.yml')] });
    const url = wharf.url;
    await pushImage(url, 'library/redis', 'v1', { annotations: { 'org.opencontainers.image.description': 'In-memory data store' } });
    await pushImage(url, 'library/redis', 'v1');
    await pushImage(url, 'library/redis', 'old');
    await pushImage(url, 'library/redis', 'stable');
    amd64 = await pushImage(url, 'library/multi', amd64Digest(), { arch: 'amd64' });
    const arm64 = await pushImage(url, 'library/multi', 'arm64-only', { arch: 'arm64' });
    index = imageIndex(
      [
      { digest: amd64.digest, size: amd64.data.length, platform: { os: 'linux', architecture: 'amd64' } },
        { digest: arm64.digest, size: arm64.data.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
      { annotations: { 'org.opencontainers.image.description': 'A multi-platform example image' } },
    );
    await putManifest(url, 'library/multi', 'latest', index, 'application/vnd.oci.image.index.v1+json');
    const readme = '# multi\n\nA small **multi-platform** image for `linux/amd64` and `linux/arm64`.\n\n## Use\n\n```\ndocker run --rm library/multi\n```\n\nSee [the guide](https://example.com/guide).\n';
    assert.equal((await raw(url, 'PUT', '/v2/library/multi/_wharf/readme', { headers: ALICE, body: readme })).status, 204);
    const sbom = blob('{"spdxVersion":"SPDX-2.3"}');
    const empty = blob('{}');
    await pushBlobs(url, 'library/multi', [sbom, empty]);
    const referrer = imageManifest(empty, [sbom], { artifactType: 'application/spdx+json', subject: { digest: index.digest, size: index.data.length, mediaType: 'application/vnd.oci.image.index.v1+json' }, configMediaType: 'application/vnd.oci.empty.v1+json' });
    await putManifest(url, 'library/multi', referrer.digest, referrer);
    await pushImage(url, 'team/secret', 'v1', { annotations: { 'org.opencontainers.image.description': 'top secret plans' } });
    await pushImage(url, 'inject/app', 'v1', { annotations: { 'org.opencontainers.image.description': HOSTILE, 'com.example.hostile': HOSTILE }, labels: { 'com.example.label': HOSTILE } });
    assert.equal((await raw(url, 'PUT', '/v2/inject/app/_wharf/readme', { headers: ALICE, body: HOSTILE_README })).status, 204);
    // 10,000 tags on one manifest, written through the metadata store (pushing them would take minutes).
    const big = await pushImage(url, 'big/app', 'v0');
    const store = new SqliteMetadataStore({ path: join(wharf.dataDir, 'wharf.db') });
    try {
      const tags = Array.from({ length: 10_000 }, (_, i) => `t${String(i).padStart(5, '0')}`);
      await store.putManifest({ repository: 'big/app', digest: big.digest, mediaType: OCI_MANIFEST, content: big.data, blobs: [], children: [], tags });
    } finally {
      await store.close();
    }
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    alice = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    await alice.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  });

  after(async () => {
    await browser?.close();
    await wharf?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A tag named for nothing in particular (the child is pushed by tag, then referenced by digest). */
  function amd64Digest(): string {
    return 'amd64-only';
  }

  test('anonymous visitors see only public repositories, in lists, search and by URL', async () => {
    const context = await browser.newContext();
    const page = watch(await context.newPage());
    await page.goto(`${wharf.url}/`);
    const names = await page.locator('main table a').allTextContents();
    assert.ok(names.includes('library/redis') && names.includes('library/multi'), names.join());
    assert.ok(!(await page.content()).includes('team/secret'));
    await shot(page, 'repositories-anonymous');
    const response = await page.goto(`${wharf.url}/r/team/secret`);
    assert.equal(response?.status(), 404);
    assert.ok(!(await page.content()).includes('team/secret'));
    problems.length = 0; // the 404 just above was asked for
    await context.close();
  });

  test('sign in, search, open a repository, a multi-arch tag, a platform with its layers and history, copy the digest', async () => {
    const page = watch(await alice.newPage());
    await page.goto(`${wharf.url}/login`);
    await shot(page, 'sign-in');
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill('alice-pw');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as alice').waitFor();
    const cookie = (await alice.cookies()).find((c) => c.name === 'wharf_session')!;
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Lax');
    assert.ok((await page.content()).includes('team/secret'), 'alice may pull team/secret');
    await shot(page, 'repositories');

    await page.getByLabel('Search repositories').fill('multi');
    await page.getByLabel('Search repositories').press('Enter');
    await page.waitForURL(/\?q=multi/);
    assert.deepEqual(await page.locator('main table tbody a').allTextContents(), ['library/multi']);
    await page.getByRole('link', { name: 'library/multi' }).click();
    await page.getByRole('heading', { name: 'library/multi' }).waitFor();
    await shot(page, 'repository');
    const latestRow = page.locator('tr', { has: page.getByRole('link', { name: 'latest', exact: true }) });
    assert.match(await latestRow.innerText(), /linux\/amd64, linux\/arm64\/v8/);

    await page.getByRole('link', { name: 'latest', exact: true }).click();
    await page.getByRole('heading', { name: 'Platforms' }).waitFor();
    assert.match(await page.locator('#referrers + div').innerText(), /application\/spdx\+json/);
    assert.ok((await page.locator('.pull input').first().inputValue()).endsWith('/library/multi:latest'));
    assert.ok((await page.locator('.pull input').nth(1).inputValue()).endsWith(`/library/multi@${index.digest}`));
    await shot(page, 'manifest-index');
    await page.getByRole('button', { name: 'Copy digest' }).click();
    await page.getByText('Copied').waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), index.digest);

    await page.getByRole('link', { name: amd64.digest.slice(0, 19) }).click();
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
    assert.equal(await page.locator('#layers + div tbody tr').count(), 2);
    const history = await page.locator('#history + div tbody tr').allInnerTexts();
    assert.equal(history.length, 3);
    assert.match(history[0]!, /COPY app \/bin\/app/);
    assert.match(history[2]!, /<missing>/);
    assert.match(await page.locator('#labels + div').innerText(), /org\.opencontainers\.image\.source/);
    await shot(page, 'manifest-image');
    await page.close();
  });

  test('star a repository, restore a tag from its history, delete a tag', async () => {
    const page = watch(await alice.newPage());
    await page.goto(`${wharf.url}/r/library/redis`);
    await page.getByRole('button', { name: '☆ Star' }).click();
    await page.getByText('Starred.').waitFor();
    assert.match(await page.locator('main').innerText(), /1 star ·/);
    assert.equal((await raw(wharf.url, 'GET', '/v1/search?q=redis')).json().results[0].star_count, 1);
    // The immutable tag has no delete button.
    assert.equal(await page.getByRole('button', { name: 'Delete tag stable' }).count(), 0);

    page.on('dialog', (dialog) => void dialog.accept());
    await page.getByRole('link', { name: 'History' }).first().click();
    await page.getByRole('heading', { name: /^History of library\/redis:/ }).waitFor();
    await page.goto(`${wharf.url}/r/library/redis/-/history/v1`);
    await shot(page, 'tag-history');
    const restore = page.getByRole('button', { name: /^Restore sha256:/ });
    assert.equal(await restore.count(), 1);
    await restore.click();
    await page.getByText('Tag restored.').waitFor();
    assert.equal(await page.locator('ol.timeline li').count(), 3);

    await page.goto(`${wharf.url}/r/library/redis`);
    await page.getByRole('button', { name: 'Delete tag old' }).click();
    await page.getByText('Tag deleted.').waitFor();
    assert.equal(await page.getByRole('link', { name: 'old', exact: true }).count(), 0);
    assert.equal((await raw(wharf.url, 'GET', '/v2/library/redis/manifests/old', { headers: ALICE })).status, 404);
    await page.close();
  });

  test('a user without rights sees neither the page nor the name; forms without the CSRF token are refused', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${wharf.url}/login`);
    await page.getByLabel('User name').fill('bob');
    await page.getByLabel('Password').fill('bob-pw');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as bob').waitFor();
    assert.ok((await page.content()).includes('big/app'));
    await page.goto(`${wharf.url}/?q=secret`);
    assert.ok(!(await page.content()).includes('team/secret'));
    assert.match(await page.locator('main').innerText(), /0 repositories/);
    assert.equal((await page.goto(`${wharf.url}/r/team/secret`))?.status(), 404);
    assert.equal((await page.goto(`${wharf.url}/r/team/secret/-/m/v1`))?.status(), 404);
    assert.ok(!(await page.content()).includes('secret'));
    // bob may pull big/app but not delete: no button, and a forged post is refused.
    await page.goto(`${wharf.url}/r/big/app`);
    assert.equal(await page.getByRole('button', { name: /^Delete tag/ }).count(), 0);
    const csrf = await page.locator('input[name=csrf]').first().inputValue();
    const forged = await page.request.post(`${wharf.url}/r/big/app/-/delete`, { form: { csrf, tag: 'v0' } });
    assert.equal(forged.status(), 403);
    const noToken = await page.request.post(`${wharf.url}/r/big/app/-/star`, { form: { star: 'on' } });
    assert.equal(noToken.status(), 403);
    assert.equal((await raw(wharf.url, 'GET', '/v2/big/app/manifests/v0', { headers: ALICE })).status, 200);
    await context.close();
  });

  test('names, annotations, labels and READMEs render inert (injection corpus)', async () => {
    const page = watch(await alice.newPage());
    for (const path of ['/r/inject/app', '/r/inject/app/-/m/v1', '/?q=inject']) {
      await page.goto(`${wharf.url}${path}`);
      assert.equal(await page.evaluate('window.__pwned'), undefined, `${path}: a script ran`);
      const injected = await page.locator('main script, main img, main svg, main iframe, main [onerror], main [onload], main [onmouseover], main div[style]').evaluateAll((elements) => elements.map((e) => (e as unknown as { outerHTML: string }).outerHTML));
      assert.deepEqual(injected, [], `${path}: an injected element exists`);
      assert.equal(await page.locator('a[href^="javascript:"]').count(), 0, `${path}: a javascript: link exists`);
      assert.equal(await page.locator('script').count(), 1, 'only the UI script');
    }
    await page.goto(`${wharf.url}/r/inject/app/-/m/v1`);
    assert.ok((await page.locator('#annotations + div').innerText()).includes('<script>'), 'the annotation shows as text');
    await page.goto(`${wharf.url}/r/inject/app`);
    assert.match(await page.locator('article.readme').innerText(), /Plain words stay/);
    await shot(page, 'injection');
    await page.close();
  });

  test('10,000 tags: paged and sortable, each page small and quick; usable at phone width and by keyboard', async () => {
    const page = watch(await alice.newPage());
    const timings: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 5; i += 1) {
      const started = performance.now();
      const res = await page.request.get(`${wharf.url}/r/big/app?sort=name&order=desc&page=${i + 2}`);
      const body = await res.body();
      timings.push(performance.now() - started);
      assert.equal(res.status(), 200);
      bytes = Math.max(bytes, body.length);
    }
    timings.sort((a, b) => a - b);
    process.stdout.write(`# big/app page (10,000 tags): median ${timings[2]!.toFixed(1)} ms, largest ${bytes} bytes\n`);
    assert.ok(bytes < 100_000, `${bytes} bytes`);
    assert.ok(timings[2]! < 1000, `median ${timings[2]} ms (goal: 200 ms on a quiet machine)`);
    await page.goto(`${wharf.url}/r/big/app?sort=name&order=asc`);
    assert.equal(await page.locator('main table tbody tr').count(), 50);
    assert.equal(await page.locator('main table tbody tr td a').first().innerText(), 't00000');
    assert.match(await page.locator('nav.pager').first().innerText(), /Page 1 of 201/);
    await page.getByRole('link', { name: 'Next →' }).click();
    assert.equal(await page.locator('main table tbody tr td a').first().innerText(), 't00050');
    await page.getByRole('link', { name: /^Tag/ }).click();
    assert.equal(await page.locator('main table tbody tr td a').first().innerText(), 'v0', 'sorting by tag again turns the order round');
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${wharf.url}/r/library/multi`);
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at phone width`);
    await shot(page, 'repository-phone');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement?.textContent'), 'Skip to content');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement?.tagName'), 'BUTTON', 'search field, then its button, are reachable');
    await page.close();
  });

  test('no console error and no failed request on any watched page', () => {
    assert.deepEqual(problems, []);
  });
});
