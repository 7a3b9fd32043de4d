import { isIP } from 'node:net';
import { DOCKER_HUB, DOCKER_HUB_API } from '../oci/reference.js';

/** True for localhost, 127.0.0.0/8 and ::1: hosts where plain HTTP cannot leave the machine. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) {
    if (host.startsWith('::ffff:')) return isLoopbackHost(host.slice('::ffff:'.length));
    return host === '::1' || host === '0:0:0:0:0:0:0:1';
  }
  return false;
}

/** The hostname part of `host[:port]`, brackets kept off IPv6 literals. */
export function hostnameOf(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'));
  const colon = registry.lastIndexOf(':');
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

/** The host the distribution API answers on: Docker Hub's differs from the name references use. */
export function apiHostOf(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** A registry as a user or a config file names it: a host, and the scheme when a URL said one. */
export interface RegistryLocation {
  /** `host[:port]`, as written. */
  registry: string;
  /** Present only when the text was a URL: then this scheme and no other is used. */
  scheme?: 'https' | 'http';
}

/**
 * Reads `host[:port]`, or a URL such as `https://host:5000/v2/` (as config files and the admin
 * commands take it): the path is ignored and the host kept as written (Docker Hub's
 * `index.docker.io` answers search, so it is not folded into `docker.io` here).
 * Throws on another scheme or an empty host.
 */
export function parseRegistryLocation(text: string): RegistryLocation {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(text.trim());
  let host = match ? match[2]! : text.trim();
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  if (!host) throw new Error(`"${text}" names no registry host`);
  if (!match) return { registry: host };
  const scheme = match[1]!.toLowerCase();
  if (scheme !== 'https' && scheme !== 'http') throw new Error(`"${text}": a registry is reached over https:// or http://, not ${scheme}://`);
  return { registry: host, scheme };
}
