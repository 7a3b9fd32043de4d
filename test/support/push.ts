import assert from 'node:assert/strict';
import { raw, type RawResponse } from './http.js';
import { blob, configBlob, imageManifest, OCI_MANIFEST, type Blob } from './oci-fixtures.js';

/** Monolithic blob upload (POST ?digest= with the body); asserts 201. */
export async function pushBlob(base: string, repo: string, content: Blob): Promise<void> {
  const res = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/?digest=${content.digest}`, {
    headers: { 'Content-Type': 'application/octet-stream' },
    body: content.data,
  });
  assert.equal(res.status, 201, `blob push: ${res.status} ${res.body}`);
}

export async function putManifest(base: string, repo: string, reference: string, manifest: Blob, contentType: string): Promise<RawResponse> {
  return raw(base, 'PUT', `/v2/${repo}/manifests/${reference}`, { headers: { 'Content-Type': contentType }, body: manifest.data });
}

/** Starts an upload session; returns its Location path. */
export async function startUpload(base: string, repo: string): Promise<string> {
  const res = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/`);
  assert.equal(res.status, 202);
  const location = res.header('location');
  assert.ok(location);
  return location;
}

/** Appends `?`/`&` query to a Location. */
export function withQuery(location: string, query: string): string {
  return location + (location.includes('?') ? '&' : '?') + query;
}

/** Pushes a one-layer image by raw HTTP (monolithic blob uploads, then the manifest by tag). */
export async function pushImage(
  base: string,
  repository: string,
  tag: string,
  headers: Record<string, string>,
  layer: Blob = blob(`layer of ${repository}:${tag} ${Math.random()}`),
): Promise<{ manifest: Blob; layer: Blob; config: Blob }> {
  const config = configBlob({ created: `${repository}:${tag}` });
  for (const b of [layer, config]) {
    const res = await raw(base, 'POST', `/v2/${repository}/blobs/uploads/?digest=${b.digest}`, {
      headers: { ...headers, 'Content-Type': 'application/octet-stream' },
      body: b.data,
    });
    assert.equal(res.status, 201, `blob push to ${repository}: ${res.status} ${res.body}`);
  }
  const manifest = imageManifest(config, [layer]);
  const res = await raw(base, 'PUT', `/v2/${repository}/manifests/${tag}`, { headers: { ...headers, 'Content-Type': OCI_MANIFEST }, body: manifest.data });
  assert.equal(res.status, 201, `manifest push to ${repository}: ${res.status} ${res.body}`);
  return { manifest, layer, config };
}
