import { familiarName, parseReference, type ImageReference } from '../oci/reference.js';

/** Where an image lives, as a command line names it. */
export type ImageLocation =
  | { transport: 'registry'; ref: ImageReference }
  | { transport: 'local'; ref: ImageReference }
  | { transport: 'oci'; dir: string; refName?: string }
  | { transport: 'docker-archive'; file: string; refName?: string };

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
  return { transport: defaultTransport, ref: parseReference(text) };
}

/** `name:tag` in docker's short form (`nginx:latest`, `localhost:5000/app:v1`), as archives record it. */
export function familiarTag(ref: ImageReference): string {
  return `${familiarName(ref)}:${ref.tag ?? 'latest'}`;
}
