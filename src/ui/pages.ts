import type { Descriptor } from '../oci/manifest.js';
import type { RepositoryProfile, TagDetail, TagEvent } from '../metadata/metadata-store.js';
import type { SearchPage } from '../registry/search-service.js';
import type { ImageSignature, ScanArtifact } from '../registry/image-artifacts.js';
import { formatBytes, html, shortDigest, timeElement, type Html } from './html.js';

/** Who is looking, as the pages need to know it. */
export interface PageViewer {
  user?: string;
  /** Access control is on (there is signing in at all). */
  signIn: boolean;
  csrf: string;
  base: string;
  /** The registry's host as clients name it (for pull commands). */
  host: string;
}

const NOTICES: Record<string, string> = {
  starred: 'Starred.',
  unstarred: 'Star removed.',
  deleted: 'Tag deleted.',
  restored: 'Tag restored.',
  readme: 'README saved.',
  'signed-out': 'Signed out.',
};

export function layout(viewer: PageViewer, title: string, body: Html, options: { query?: string; notice?: string | null; error?: string } = {}): Html {
  const base = viewer.base;
  const notice = options.notice ? NOTICES[options.notice] : undefined;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Wharf</title><link rel="icon" href="data:,"><link rel="stylesheet" href="${base}_/app.css"><script src="${base}_/app.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="${base}">⚓ Wharf</a>
<form class="search" role="search" method="get" action="${base}"><label class="visually-hidden" for="q">Search repositories</label>
<input type="search" id="q" name="q" value="${options.query ?? ''}" placeholder="Search repositories"><button type="submit">Search</button></form>
<div class="who">${
    viewer.signIn
      ? viewer.user !== undefined
        ? html`<span>Signed in as <strong>${viewer.user}</strong></span><form class="inline" method="post" action="${base}logout"><input type="hidden" name="csrf" value="${viewer.csrf}"><button type="submit">Sign out</button></form>`
        : html`<a class="button" href="${base}login">Sign in</a>`
      : ''
  }</div></header>
<main id="main">${notice ? html`<p class="notice" role="status">${notice}</p>` : ''}${options.error ? html`<p class="notice error" role="alert">Error: ${options.error}</p>` : ''}${body}</main></body></html>`;
}

export function pager(label: string, page: number, pages: number, link: (page: number) => string): Html {
  if (pages <= 1) return html``;
  return html`<nav class="pager" aria-label="${label}">${page > 1 ? html`<a href="${link(page - 1)}" rel="prev">← Previous</a>` : ''}<span>Page ${page} of ${pages}</span>${
    page < pages ? html`<a href="${link(page + 1)}" rel="next">Next →</a>` : ''
  }</nav>`;
}

export interface ListedRepository {
  name: string;
  description: string;
  stars: number;
  official: boolean;
  starred: boolean;
  bytes: number;
  lastPushedAt?: number;
}

export function repositoryListPage(viewer: PageViewer, query: string, result: SearchPage, rows: ListedRepository[], notice: string | null): Html {
  const base = viewer.base;
  const title = query === '' ? 'Repositories' : `Search: ${query}`;
  const body = html`<h1>${title}</h1>
<p class="muted">${result.num_results} repositor${result.num_results === 1 ? 'y' : 'ies'}${query !== '' ? html` matching <strong>${query}</strong>` : ''}.${
    viewer.signIn && viewer.user === undefined ? ' Sign in to see the repositories you may pull.' : ''
  }</p>
${
  rows.length === 0
    ? html`<p>No repositories to show.</p>`
    : html`<div class="table-wrap"><table><caption class="visually-hidden">${title}</caption><thead><tr><th scope="col">Name</th><th scope="col">Description</th><th scope="col" class="num">Stars</th><th scope="col" class="num wide">Size</th><th scope="col" class="wide">Last push</th></tr></thead><tbody>
${rows.map(
  (row) => html`<tr><td><a href="${base}r/${row.name}">${row.name}</a>${row.official ? html` <span class="badge">official</span>` : ''}</td><td>${row.description}</td><td class="num">${row.stars}${row.starred ? html` <span class="badge" title="you starred it">★ yours</span>` : ''}</td><td class="num wide">${formatBytes(row.bytes)}</td><td class="wide">${timeElement(row.lastPushedAt)}</td></tr>
`,
)}</tbody></table></div>`
}
${pager('Result pages', result.page, result.num_pages, (page) => `${base}?${new URLSearchParams({ ...(query !== '' ? { q: query } : {}), page: String(page) }).toString()}`)}`;
  return layout(viewer, title, body, { query, notice });
}

export interface TagRow extends TagDetail {
  platforms: string[];
  immutable: boolean;
}

export interface TagSort {
  sort: 'name' | 'pushed' | 'size';
  descending: boolean;
  page: number;
  pages: number;
}

export function repositoryPage(
  viewer: PageViewer,
  name: string,
  profile: RepositoryProfile,
  readme: Html | undefined,
  tags: { rows: TagRow[]; total: number; sort: TagSort },
  may: { star: boolean; starred: boolean; push: boolean; delete: boolean; official: boolean },
  notice: string | null,
): Html {
  const base = viewer.base;
  const here = `${base}r/${name}`;
  const sortLink = (sort: TagSort['sort'], label: string) => {
    const active = tags.sort.sort === sort;
    const descending = active ? !tags.sort.descending : sort !== 'name';
    const arrow = active ? (tags.sort.descending ? ' ↓' : ' ↑') : '';
    return html`<a href="${here}?${new URLSearchParams({ sort, order: descending ? 'desc' : 'asc' }).toString()}#tags">${label}${arrow}<span class="visually-hidden">${active ? (tags.sort.descending ? ' (sorted descending)' : ' (sorted ascending)') : ''}</span></a>`;
  };
  const body = html`<h1>${name}${may.official ? html` <span class="badge">official</span>` : ''}</h1>
${profile.description !== undefined ? html`<p>${profile.description}</p>` : ''}
<p>${profile.stars} star${profile.stars === 1 ? '' : 's'} · ${profile.tagCount} tag${profile.tagCount === 1 ? '' : 's'} · ${formatBytes(profile.bytes)} · last push ${timeElement(profile.lastPushedAt)}
${
  may.star
    ? html` <form class="inline" method="post" action="${here}/-/star"><input type="hidden" name="csrf" value="${viewer.csrf}"><input type="hidden" name="star" value="${may.starred ? 'off' : 'on'}"><button type="submit" aria-pressed="${may.starred ? 'true' : 'false'}">${may.starred ? '★ Unstar' : '☆ Star'}</button></form>`
    : ''
}</p>
${pullCommand('pull-repo', `docker pull ${viewer.host}/${name}`)}
<h2 id="tags">Tags</h2>
${
  tags.rows.length === 0
    ? html`<p>No tags.</p>`
    : html`<div class="table-wrap"><table><caption class="visually-hidden">Tags of ${name}</caption><thead><tr><th scope="col">${sortLink('name', 'Tag')}</th><th scope="col">Digest</th><th scope="col" class="num">${sortLink('size', 'Size')}</th><th scope="col" class="wide">Platforms</th><th scope="col">${sortLink('pushed', 'Pushed')}</th><th scope="col" class="wide">Last pulled</th><th scope="col" class="wide">Immutable</th><th scope="col">Actions</th></tr></thead><tbody>
${tags.rows.map(
  (row) => html`<tr><td><a href="${here}/-/m/${row.name}">${row.name}</a></td><td><a class="mono" href="${here}/-/m/${row.digest}" title="${row.digest}">${shortDigest(row.digest)}</a></td><td class="num">${formatBytes(row.totalSize)}</td><td class="wide">${row.platforms.join(', ') || html`<span class="muted">—</span>`}</td><td>${timeElement(row.pushedAt)}</td><td class="wide">${timeElement(row.pulledAt)}</td><td class="wide">${row.immutable ? 'yes' : 'no'}</td><td><a href="${here}/-/history/${row.name}">History</a>${
    may.delete && !row.immutable
      ? html` <form class="inline" method="post" action="${here}/-/delete" data-confirm="Delete tag ${row.name}?"><input type="hidden" name="csrf" value="${viewer.csrf}"><input type="hidden" name="tag" value="${row.name}"><button class="danger" type="submit" aria-label="Delete tag ${row.name}">Delete</button></form>`
      : ''
  }</td></tr>
`,
)}</tbody></table></div>`
}
${pager('Tag pages', tags.sort.page, tags.sort.pages, (page) => `${here}?${new URLSearchParams({ sort: tags.sort.sort, order: tags.sort.descending ? 'desc' : 'asc', page: String(page) }).toString()}#tags`)}
<h2 id="readme">README</h2>
${readme ? html`<article class="readme">${readme}</article>` : html`<p class="muted">No README.</p>`}
${
  may.push
    ? html`<details><summary>Edit README</summary><form method="post" action="${here}/-/readme"><input type="hidden" name="csrf" value="${viewer.csrf}"><label for="readme-text">Markdown (empty removes it)</label><br><textarea id="readme-text" name="readme" rows="12" style="width:100%">${profile.readme ?? ''}</textarea><br><button type="submit">Save README</button></form></details>`
    : ''
}`;
  return layout(viewer, name, body, { notice });
}

function pullCommand(id: string, command: string): Html {
  return html`<div class="pull"><label class="visually-hidden" for="${id}">Pull command</label><input id="${id}" type="text" readonly value="${command}" size="60"><button type="button" data-copy="${command}" aria-controls="${id}">Copy</button></div>`;
}

/** What the image's config says (the parts the page shows). */
export interface ImageConfig {
  os?: string;
  architecture?: string;
  variant?: string;
  created?: string;
  labels: Record<string, string>;
  history: Array<{ created?: string; createdBy?: string; comment?: string; emptyLayer: boolean }>;
  entrypoint?: string[];
  cmd?: string[];
}

export interface ManifestView {
  name: string;
  tag?: string;
  digest: string;
  mediaType: string;
  size: number;
  kind: 'image' | 'index';
  children: Descriptor[];
  config?: Descriptor;
  layers: Descriptor[];
  annotations: Record<string, string>;
  image?: ImageConfig;
  referrers: Descriptor[];
  /** Cosign signatures of this manifest (the `.sig` tag and signature referrers). */
  signatures?: ImageSignature[];
  /** SBOM and vulnerability report referrers, summarised. */
  scanArtifacts?: ScanArtifact[];
  /** Indexes this manifest is a platform of (by digest), when known. */
  content: string;
}

export function manifestPage(viewer: PageViewer, view: ManifestView): Html {
  const base = viewer.base;
  const here = `${base}r/${view.name}`;
  const title = view.tag !== undefined ? `${view.name}:${view.tag}` : `${view.name}@${shortDigest(view.digest)}`;
  const layerTotal = view.layers.reduce((sum, layer) => sum + layer.size, 0);
  const image = view.image;
  const body = html`<p><a href="${here}">← ${view.name}</a></p>
<h1>${title}</h1>
<dl class="facts">
<dt>Digest</dt><dd><code id="digest-text">${view.digest}</code> <button type="button" data-copy="${view.digest}" aria-controls="digest-text" aria-label="Copy digest">Copy</button></dd>
<dt>Media type</dt><dd><code>${view.mediaType}</code></dd>
<dt>Manifest size</dt><dd>${formatBytes(view.size)}</dd>
${image ? html`<dt>Platform</dt><dd>${[image.os, image.architecture, image.variant].filter(Boolean).join('/')}</dd><dt>Created</dt><dd>${image.created ?? '—'}</dd>` : ''}
${view.kind === 'image' ? html`<dt>Layers</dt><dd>${view.layers.length}, ${formatBytes(layerTotal)} compressed</dd>` : ''}
${image?.entrypoint ? html`<dt>Entrypoint</dt><dd><code>${JSON.stringify(image.entrypoint)}</code></dd>` : ''}
${image?.cmd ? html`<dt>Command</dt><dd><code>${JSON.stringify(image.cmd)}</code></dd>` : ''}
</dl>
<h2>Pull</h2>
${view.tag !== undefined ? pullCommand('pull-tag', `docker pull ${viewer.host}/${view.name}:${view.tag}`) : ''}
${pullCommand('pull-digest', `docker pull ${viewer.host}/${view.name}@${view.digest}`)}
${view.tag !== undefined ? html`<p><a href="${here}/-/history/${view.tag}">History of tag ${view.tag}</a></p>` : ''}
${
  view.kind === 'index'
    ? html`<h2 id="platforms">Platforms</h2><div class="table-wrap"><table><thead><tr><th scope="col">Platform</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col" class="wide">Media type</th></tr></thead><tbody>
${view.children.map(
  (child) => html`<tr><td>${child.platform ? [child.platform.os, child.platform.architecture, child.platform.variant].filter(Boolean).join('/') : 'unknown'}${
    child.annotations?.['vnd.docker.reference.type'] ? html` <span class="badge">${child.annotations['vnd.docker.reference.type']}</span>` : ''
  }</td><td><a class="mono" href="${here}/-/m/${child.digest}">${shortDigest(child.digest)}</a></td><td class="num">${formatBytes(child.size)}</td><td class="wide"><code>${child.mediaType}</code></td></tr>
`,
)}</tbody></table></div>`
    : ''
}
${
  view.kind === 'image'
    ? html`<h2 id="layers">Layers</h2><div class="table-wrap"><table><thead><tr><th scope="col" class="num">#</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col" class="wide">Media type</th></tr></thead><tbody>
${view.layers.map((layer, i) => html`<tr><td class="num">${i + 1}</td><td><code title="${layer.digest}">${shortDigest(layer.digest)}</code></td><td class="num">${formatBytes(layer.size)}</td><td class="wide"><code>${layer.mediaType}</code></td></tr>
`)}</tbody><tfoot><tr><th scope="row" colspan="2">Total</th><td class="num">${formatBytes(layerTotal)}</td><td class="wide"></td></tr></tfoot></table></div>`
    : ''
}
${image && image.history.length > 0 ? historyTable(view, image) : ''}
${keyValues('Labels', 'labels', image?.labels ?? {})}
${keyValues('Annotations', 'annotations', view.annotations)}
${signaturesSection(here, view.signatures ?? [])}
${scanSection(here, view.scanArtifacts ?? [])}
<h2 id="referrers">Referrers</h2>
${
  view.referrers.length === 0
    ? html`<p class="muted">No signatures, SBOMs or other artifacts refer to this manifest.</p>`
    : html`<div class="table-wrap"><table><thead><tr><th scope="col">Artifact type</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col" class="wide">Created</th></tr></thead><tbody>
${view.referrers.map(
  (ref) => html`<tr><td><code>${ref.artifactType ?? ref.mediaType}</code></td><td><a class="mono" href="${here}/-/m/${ref.digest}">${shortDigest(ref.digest)}</a></td><td class="num">${formatBytes(ref.size)}</td><td class="wide">${ref.annotations?.['org.opencontainers.image.created'] ?? '—'}</td></tr>
`,
)}</tbody></table></div>`
}
<details><summary>Manifest JSON</summary><pre><code>${view.content}</code></pre></details>`;
  return layout(viewer, title, body);
}

function signaturesSection(here: string, signatures: readonly ImageSignature[]): Html {
  return html`<h2 id="signatures">Signatures</h2>${
    signatures.length === 0
      ? html`<p class="muted">No cosign signatures.</p>`
      : html`<div class="table-wrap"><table><thead><tr><th scope="col">Key</th><th scope="col">Time</th><th scope="col">Annotations</th><th scope="col" class="wide">Stored as</th></tr></thead><tbody>
${signatures.map(
  (s) => html`<tr class="signature"><td>${
    s.keyIds.length > 0 ? html`<span class="badge">verified</span> key <code class="key-id">${s.keyIds.join(', ')}</code>` : html`<span class="muted">not verified by a configured key</span>`
  }${s.problem !== undefined ? html`<br><span class="muted">${s.problem}</span>` : ''}</td><td>${timeElement(s.time)} <span class="muted">(${s.timeSource === 'payload' ? 'payload timestamp' : 'pushed'})</span></td><td>${
    Object.keys(s.annotations).length === 0
      ? html`<span class="muted">none</span>`
      : html`<ul class="annotations">${Object.entries(s.annotations)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([key, value]) => html`<li><code>${key}</code>=${value}</li>`)}</ul>`
  }</td><td class="wide">${s.source.startsWith('tag ') ? html`<code>${s.source}</code>` : html`referrer <a class="mono" href="${here}/-/m/${s.manifestDigest}">${shortDigest(s.manifestDigest)}</a>`}</td></tr>
`,
)}</tbody></table></div>`
  }`;
}

function scanSection(here: string, artifacts: readonly ScanArtifact[]): Html {
  if (artifacts.length === 0) return html``;
  const order = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'];
  return html`<h2 id="scan">SBOM and vulnerabilities</h2><ul class="scan-artifacts">${artifacts.map((a) => {
    const link = html`<a class="mono" href="${here}/-/m/${a.digest}">${shortDigest(a.digest)}</a>`;
    const created = a.created !== undefined ? html` <span class="muted">(${a.created})</span>` : '';
    if (a.kind === 'sbom') {
      return html`<li class="sbom"><strong>SBOM (CycloneDX)</strong> ${link}: ${a.components !== undefined ? `${a.components} component${a.components === 1 ? '' : 's'}` : html`<span class="muted">${a.problem ?? ''}</span>`}${created}</li>`;
    }
    const counts = a.bySeverity
      ? Object.entries(a.bySeverity)
          .sort(([x], [y]) => (order.indexOf(x) < 0 ? 99 : order.indexOf(x)) - (order.indexOf(y) < 0 ? 99 : order.indexOf(y)))
          .map(([severity, n]) => `${severity.toLowerCase()} ${n}`)
          .join(', ')
      : '';
    return html`<li class="vulnerabilities"><strong>Vulnerability report</strong> ${link}: ${
      a.total !== undefined ? `${a.total} vulnerabilit${a.total === 1 ? 'y' : 'ies'}${counts ? ` (${counts})` : ''}` : html`<span class="muted">${a.problem ?? ''}</span>`
    }${created}</li>`;
  })}</ul>`;
}

/** docker history's columns: IMAGE, CREATED, CREATED BY, SIZE, COMMENT (newest first). */
function historyTable(view: ManifestView, image: ImageConfig): Html {
  let layer = 0;
  const rows = image.history.map((entry) => {
    const size = entry.emptyLayer ? 0 : (view.layers[layer++]?.size ?? 0);
    return { ...entry, size };
  });
  rows.reverse();
  return html`<h2 id="history">History</h2><div class="table-wrap"><table><thead><tr><th scope="col">Image</th><th scope="col">Created</th><th scope="col">Created by</th><th scope="col" class="num">Size</th><th scope="col" class="wide">Comment</th></tr></thead><tbody>
${rows.map(
  (row, i) => html`<tr><td class="mono">${i === 0 && view.config ? shortDigest(view.config.digest) : '<missing>'}</td><td>${row.created ? timeElement(Date.parse(row.created)) : '—'}</td><td><code>${row.createdBy ?? ''}</code></td><td class="num">${formatBytes(row.size)}</td><td class="wide">${row.comment ?? ''}</td></tr>
`,
)}</tbody></table></div>`;
}

function keyValues(title: string, id: string, values: Record<string, string>): Html {
  const entries = Object.entries(values).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return html`<h2 id="${id}">${title}</h2>${
    entries.length === 0
      ? html`<p class="muted">None.</p>`
      : html`<div class="table-wrap"><table><thead><tr><th scope="col">Key</th><th scope="col">Value</th></tr></thead><tbody>${entries.map(
          ([key, value]) => html`<tr><td><code>${key}</code></td><td>${value}</td></tr>`,
        )}</tbody></table></div>`
  }`;
}

export function tagHistoryPage(viewer: PageViewer, name: string, tag: string, events: TagEvent[], canRestore: boolean, notice: string | null): Html {
  const base = viewer.base;
  const here = `${base}r/${name}`;
  const current = events[0]?.action === 'push' ? events[0].digest : undefined;
  const body = html`<p><a href="${here}">← ${name}</a></p><h1>History of ${name}:${tag}</h1>
${
  events.length === 0
    ? html`<p>No recorded moves.</p>`
    : html`<ol class="timeline">${events.map((event) => {
        const target = event.action === 'push' ? event.digest : event.previous;
        const restorable = canRestore && target !== undefined && target !== current;
        return html`<li>${timeElement(event.at)} — <strong>${event.action === 'push' ? (event.previous ? 'moved' : 'pushed') : 'deleted'}</strong>
${event.action === 'push' && event.digest ? html` to <a class="mono" href="${here}/-/m/${event.digest}">${shortDigest(event.digest)}</a>` : ''}
${event.previous ? html` (was <a class="mono" href="${here}/-/m/${event.previous}">${shortDigest(event.previous)}</a>)` : ''}
 by ${event.actor ?? html`<span class="muted">anonymous</span>`}${event.action === 'push' && event.digest === current ? html` <span class="badge">current</span>` : ''}
${
  restorable
    ? html` <form class="inline" method="post" action="${here}/-/restore" data-confirm="Point ${tag} back at ${shortDigest(target)}?"><input type="hidden" name="csrf" value="${viewer.csrf}"><input type="hidden" name="tag" value="${tag}"><input type="hidden" name="digest" value="${target}"><button type="submit">Restore ${shortDigest(target)}</button></form>`
    : ''
}</li>`;
      })}</ol>`
}`;
  return layout(viewer, `History of ${name}:${tag}`, body, { notice });
}

export function signInPage(viewer: PageViewer, next: string, error?: string): Html {
  const body = html`<h1>Sign in</h1>
<form method="post" action="${viewer.base}login" style="max-width:22rem"><input type="hidden" name="csrf" value="${viewer.csrf}"><input type="hidden" name="next" value="${next}">
<p><label for="username">User name</label><br><input type="text" id="username" name="username" autocomplete="username" required autofocus></p>
<p><label for="password">Password</label><br><input type="password" id="password" name="password" autocomplete="current-password" required></p>
<p><button type="submit">Sign in</button></p></form>
<p class="muted">The same users as the registry (docker login).</p>`;
  return layout(viewer, 'Sign in', body, error !== undefined ? { error } : {});
}

export function errorPage(viewer: PageViewer, status: number, message: string): Html {
  return layout(viewer, status === 404 ? 'Not found' : 'Error', html`<h1>${status === 404 ? 'Not found' : 'Something went wrong'}</h1><p>${message}</p><p><a href="${viewer.base}">All repositories</a></p>`);
}
