import { isValidRepositoryName, isValidTag } from './names.js';
import { parseDigest } from './digest.js';

/** Docker Hub's canonical host name in a normalised reference. */
export const DOCKER_HUB = 'docker.io';
/** Where Docker Hub's registry API actually answers. */
export const DOCKER_HUB_API = 'registry-1.docker.io';

/** An image reference parsed the way the docker CLI parses it. */
export interface ImageReference {
  /** Registry host with optional port, normalised (`docker.io` for Docker Hub). */
  registry: string;
  /** Repository path inside the registry (`library/nginx` for `nginx`). */
  repository: string;
  tag?: string;
  digest?: string;
}

export class ReferenceError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`invalid reference "${input}": ${reason}`);
    this.name = 'ReferenceError';
  }
}

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);

/**
 * Parses `[registry/]repository[:tag][@digest]` as docker does: a first path component is a
 * registry only when it holds a `.` or `:`, is `localhost`, or has upper-case letters; otherwise
 * the registry is Docker Hub, where a single-component name gains `library/`. A reference with
 * neither tag nor digest means `:latest`. Throws ReferenceError on anything docker would refuse.
 */
export function parseReference(input: string, options: { defaultTag?: string | false } = {}): ImageReference {
  if (input.length === 0) throw new ReferenceError(input, 'empty');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!parseDigest(digest)) throw new ReferenceError(input, `bad digest "${digest}"`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!isValidTag(tag)) throw new ReferenceError(input, `bad tag "${tag}"`);
  }
  let registry = DOCKER_HUB;
  let repository = rest;
  const firstSlash = rest.indexOf('/');
  if (firstSlash >= 0) {
    const first = rest.slice(0, firstSlash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.toLowerCase() !== first) {
      if (!DOMAIN.test(first)) throw new ReferenceError(input, `bad registry host "${first}"`);
      registry = first;
      repository = rest.slice(firstSlash + 1);
    }
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (repository.toLowerCase() !== repository) throw new ReferenceError(input, 'repository name must be lowercase');
  if (!isValidRepositoryName(repository)) throw new ReferenceError(input, `bad repository name "${repository}"`);
  if (tag === undefined && digest === undefined && options.defaultTag !== false) tag = options.defaultTag ?? 'latest';
  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The full, normalised form: `docker.io/library/nginx:latest`, `host:5000/app@sha256:…`. */
export function formatReference(ref: ImageReference): string {
  let out = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) out += `:${ref.tag}`;
  if (ref.digest !== undefined) out += `@${ref.digest}`;
  return out;
}

/** The short form docker prints: Docker Hub's `library/` and host are dropped. */
export function familiarName(ref: Pick<ImageReference, 'registry' | 'repository'>): string {
  if (ref.registry !== DOCKER_HUB) return `${ref.registry}/${ref.repository}`;
  return ref.repository.startsWith('library/') ? ref.repository.slice('library/'.length) : ref.repository;
}
