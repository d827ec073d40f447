import { constants, generateKeyPairSync, privateEncrypt } from 'node:crypto';

/**
 * A local RSA-2048 key pair standing in for the KMS signing key: `signDigest` does what kms:Sign with
 * RSASSA_PKCS1_V1_5_SHA_256 and MessageType DIGEST does (PKCS #1 v1.5 over a given SHA-256 digest), so a
 * mocked KMS produces signatures that verify against `publicKeyDer` exactly as real ones verify against
 * kms:GetPublicKey's answer.
 */
export function testSigningKey(): {
  publicKeyDer: Uint8Array;
  signDigest: (digest: Uint8Array) => Uint8Array;
} {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  // DER DigestInfo prefix of SHA-256 (RFC 8017, section 9.2, note 1).
  const prefix = Buffer.from('3031300d060960864801650304020105000420', 'hex');
  return {
    publicKeyDer: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
    signDigest: (digest) =>
      new Uint8Array(
        privateEncrypt(
          { key: privateKey, padding: constants.RSA_PKCS1_PADDING },
          Buffer.concat([prefix, digest]),
        ),
      ),
  };
}
