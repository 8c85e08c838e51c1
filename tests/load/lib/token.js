'use strict';
/**
 * Mints the JWTs the load-test users connect with, signed with the gateway's key.
 *
 * The processor signs its own tokens (ES256 or RS256, Node's built-in crypto, no extra
 * dependency) instead of reading a pool minted beforehand: any number of users can connect,
 * every token's lifetime matches its user's session as an identity provider's would, and the
 * same scenario runs against a staging gateway given that environment's test signing key.
 *
 * Configuration (environment):
 *   LOAD_JWT_KEY_FILE   PEM private key (default: var/dev-keys/private.pem, the key `make run`
 *                       and `collabgate serve` with COLLABGATE_DEV_KEYS=true generate and trust)
 *   LOAD_JWT_KID        key id (default: the RFC 7638 thumbprint of the public key, which is the
 *                       gateway's DevKeys.kid)
 *   LOAD_JWT_ISSUER, LOAD_JWT_AUDIENCE   `iss` / `aud` claims, for a gateway that checks them
 *   LOAD_JWT_ROLE_CLAIM dot path of the role claim (default `role`)
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const DEFAULT_KEY_FILE = path.resolve(__dirname, '..', '..', '..', 'var', 'dev-keys', 'private.pem');

function base64url(data) {
  return Buffer.from(data).toString('base64url');
}

/** RFC 7638 JWK thumbprint (SHA-256) of a public key: the members required for its type, sorted. */
function thumbprint(publicKey) {
  const jwk = publicKey.export({ format: 'jwk' });
  const members =
    jwk.kty === 'EC'
      ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
      : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return base64url(crypto.createHash('sha256').update(JSON.stringify(members)).digest());
}

function algorithmFor(privateKey) {
  if (privateKey.asymmetricKeyType === 'ec') {
    const curve = privateKey.asymmetricKeyDetails.namedCurve;
    if (curve !== 'prime256v1') {
      throw new Error(`EC key on ${curve}: ES256 needs a P-256 key`);
    }
    return 'ES256';
  }
  if (privateKey.asymmetricKeyType === 'rsa') {
    return 'RS256';
  }
  throw new Error(`unsupported key type ${privateKey.asymmetricKeyType}: use a P-256 or RSA key`);
}

function setDotPath(claims, dotPath, value) {
  const parts = dotPath.split('.');
  const leaf = parts.pop();
  let node = claims;
  for (const part of parts) {
    node[part] = node[part] || {};
    node = node[part];
  }
  node[leaf] = value;
}

class TokenMinter {
  constructor({ keyPem, kid, issuer, audience, roleClaim = 'role' }) {
    this.privateKey = crypto.createPrivateKey(keyPem);
    this.algorithm = algorithmFor(this.privateKey);
    this.kid = kid || thumbprint(crypto.createPublicKey(this.privateKey));
    this.issuer = issuer || undefined;
    this.audience = audience || undefined;
    this.roleClaim = roleClaim;
    this.header = base64url(JSON.stringify({ alg: this.algorithm, kid: this.kid, typ: 'JWT' }));
  }

  static fromEnvironment(env = process.env) {
    const keyFile = env.LOAD_JWT_KEY_FILE || DEFAULT_KEY_FILE;
    let keyPem;
    try {
      keyPem = fs.readFileSync(keyFile);
    } catch (error) {
      throw new Error(
        `cannot read the signing key ${keyFile} (${error.code}): set LOAD_JWT_KEY_FILE, or start ` +
          'the gateway once with COLLABGATE_DEV_KEYS=true (`make run`) to generate it'
      );
    }
    return new TokenMinter({
      keyPem,
      kid: env.LOAD_JWT_KID,
      issuer: env.LOAD_JWT_ISSUER,
      audience: env.LOAD_JWT_AUDIENCE,
      roleClaim: env.LOAD_JWT_ROLE_CLAIM || 'role'
    });
  }

  /** A signed token for `sub`, valid for `ttlSeconds` from now. */
  mint(sub, { role = 'nurse', name = sub, ttlSeconds = 3600 } = {}) {
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub, name, iat: now, exp: now + Math.ceil(ttlSeconds) };
    setDotPath(claims, this.roleClaim, role);
    if (this.issuer) claims.iss = this.issuer;
    if (this.audience) claims.aud = this.audience;
    const signingInput = `${this.header}.${base64url(JSON.stringify(claims))}`;
    const signature =
      this.algorithm === 'ES256'
        ? crypto.sign('sha256', Buffer.from(signingInput), {
            key: this.privateKey,
            dsaEncoding: 'ieee-p1363' // JWS wants r || s, not DER
          })
        : crypto.sign('sha256', Buffer.from(signingInput), this.privateKey);
    return `${signingInput}.${base64url(signature)}`;
  }
}

module.exports = { TokenMinter, thumbprint, DEFAULT_KEY_FILE };
