import { familiarName, parseReference, type ImageReference } from '../oci/reference.js';

/** Where an image lives, as a command line names it. */
export type ImageLocation =
  | { transport: 'registry'; ref: ImageReference }
  | { transport: 'local'; ref: ImageReference }
  | { transport: 'oci'; dir: string; refName?: string }
  | { transport: 'docker-archive'; file: string; refName?: string }
  | { transport: 'oci-archive'; file: string; refName?: string }
  | { transport: 'containers-storage'; name: string };

/** The transports wharf reads and writes, as the error for any other names them. */
const KNOWN = 'docker://, local:, oci:, oci-archive:, docker-archive:, containers-storage:';

/** Transports of skopeo and podman that wharf does not implement (their names also parse as references). */
const FOREIGN = new Set(['dir', 'docker-daemon', 'ostree', 'sif', 'tarball', 'atomic']);

/**
 * Parses `docker://REF`, `oci:DIR[:TAG]`, `docker-archive:FILE[:REF]`, `local:REF`, or a bare
 * reference (which means `defaultTransport`). Paths end at the first colon, as skopeo reads them.
 */
export function parseImageLocation(text: string, defaultTransport: 'registry' | 'local' = 'registry'): ImageLocation {
  const split = (rest: string): [string, string | undefined] => {
    const colon = rest.indexOf(':');
    return colon < 0 ? [rest, undefined] : [rest.slice(0, colon), rest.slice(colon + 1) || undefined];
  };
  if (text.startsWith('docker://')) return { transport: 'registry', ref: parseReference(text.slice('docker://'.length)) };
  if (text.startsWith('local:')) return { transport: 'local', ref: parseReference(text.slice('local:'.length)) };
  if (text.startsWith('oci:')) {
    const [dir, refName] = split(text.slice('oci:'.length));
    if (!dir) throw new Error(`"${text}": oci: needs a directory`);
    return { transport: 'oci', dir, ...(refName ? { refName } : {}) };
  }
  if (text.startsWith('docker-archive:')) {
    const [file, refName] = split(text.slice('docker-archive:'.length));
    if (!file) throw new Error(`"${text}": docker-archive: needs a file`);
    return { transport: 'docker-archive', file, ...(refName ? { refName } : {}) };
  }
  if (text.startsWith('oci-archive:')) {
    const [file, refName] = split(text.slice('oci-archive:'.length));
    if (!file) throw new Error(`"${text}": oci-archive: needs a file`);
    return { transport: 'oci-archive', file, ...(refName ? { refName } : {}) };
  }
  if (text.startsWith('containers-storage:')) {
    const name = text.slice('containers-storage:'.length);
    if (!name) throw new Error(`"${text}": containers-storage: needs an image name`);
    return { transport: 'containers-storage', name };
  }
  const prefix = /^([a-z][a-z0-9+.-]*):(?!\/\/)/.exec(text)?.[1];
  if (prefix && FOREIGN.has(prefix)) throw new Error(`"${text}": unknown transport "${prefix}:" (wharf knows ${KNOWN})`);
  try {
    return { transport: defaultTransport, ref: parseReference(text) };
  } catch (error) {
    // `foo:bar/baz` that is no reference reads as a transport we do not know, and is named so.
    const scheme = /^([a-z][a-z0-9+.-]*):(\/\/)?/.exec(text);
    if (scheme && !/^\d/.test(text.slice(scheme[0].length))) throw new Error(`"${text}": unknown transport "${scheme[1]}:${scheme[2] ?? ''}" (wharf knows ${KNOWN})`);
    throw error;
  }
}

/** `name:tag` in docker's short form (`nginx:latest`, `localhost:5000/app:v1`), as archives record it. */
export function familiarTag(ref: ImageReference): string {
  return `${familiarName(ref)}:${ref.tag ?? 'latest'}`;
}
