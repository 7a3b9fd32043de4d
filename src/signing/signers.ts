import { sign as signBytes, verify as verifyBytes, type KeyObject } from 'node:crypto';
import { hashFor, keyIdOf } from './signing-keys.js';

/**
 * Who makes and who checks a signature. A key pair is the one kind today; a keyless signer
 * (a Fulcio certificate for an OIDC identity, the signature logged in Rekor) is another
 * implementation of the same two roles: it adds its certificate to the layer's annotations and
 * its verifier checks the certificate's chain and identity instead of a listed key.
 */
export interface PayloadSigner {
  /** Names the signer in output and logs: a key id, or a certificate's identity. */
  readonly identity: string;
  /** The base64 signature over `payload`, and annotations to store beside it on the layer. */
  sign(payload: Buffer): Promise<{ signature: string; annotations: Record<string, string> }>;
}

export interface PayloadVerifier {
  readonly identity: string;
  /**
   * Whether `signature` (base64) over `payload` was made by this verifier's signer; the layer's
   * other annotations (a certificate, a bundle) are there for verifiers that need them.
   */
  verify(payload: Buffer, signature: string, layerAnnotations: Record<string, string>): boolean;
}

/** Signs with a private key: ECDSA with the curve's hash, DER-encoded, as cosign does. */
export class KeySigner implements PayloadSigner {
  readonly identity: string;
  constructor(private readonly key: KeyObject) {
    this.identity = keyIdOf(key);
  }

  async sign(payload: Buffer): Promise<{ signature: string; annotations: Record<string, string> }> {
    return { signature: signBytes(hashFor(this.key), payload, this.key).toString('base64'), annotations: {} };
  }
}

/** Verifies with a public key. */
export class KeyVerifier implements PayloadVerifier {
  readonly identity: string;
  constructor(private readonly key: KeyObject) {
    this.identity = keyIdOf(key);
  }

  verify(payload: Buffer, signature: string): boolean {
    const bytes = Buffer.from(signature, 'base64');
    if (bytes.length === 0) return false;
    try {
      return verifyBytes(hashFor(this.key), payload, this.key, bytes);
    } catch {
      // A signature that is not even DER is simply not a valid one.
      return false;
    }
  }
}
