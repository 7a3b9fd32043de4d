// proxy-from-env ships no types: the one function the client calls.
declare module 'proxy-from-env' {
  /** The proxy URL that *_PROXY name for `url`, or '' when NO_PROXY excludes it or none is set. */
  export function getProxyForUrl(url: string): string;
}
