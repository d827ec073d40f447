import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/**
 * The token of a collaboration source (issue 15 §3) read from the Secrets Manager secret the stack creates for it.
 * The stack creates the secret EMPTY (no version): an operator puts the token in with
 * `aws secretsmanager put-secret-value`, so it is never in the template, a parameter or the function's environment.
 * Read at every run (a token put in or rotated is used by the next run, with no redeployment).
 */

/** The secret holds no token yet (no version, or an empty or blank value): nothing can be scanned. */
export class SourceTokenNotSetError extends Error {
  constructor(
    readonly secretId: string,
    why: string,
  ) {
    super(
      `the token secret ${secretId} ${why}: put the token in with ` +
        `aws secretsmanager put-secret-value --secret-id ${secretId} --secret-string <token>`,
    );
    this.name = 'SourceTokenNotSetError';
  }
}

/** The token in `secretId` (trimmed); SourceTokenNotSetError when there is none. Other failures are thrown as is. */
export async function readSourceToken(client: SecretsManagerClient, secretId: string): Promise<string> {
  let secret: string | undefined;
  let binary = false;
  try {
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    secret = out.SecretString;
    binary = out.SecretBinary !== undefined;
  } catch (err) {
    // An empty secret has no AWSCURRENT version: GetSecretValue answers ResourceNotFoundException for it (and for a
    // secret that does not exist, which the stack rules out).
    if ((err as { name?: unknown }).name === 'ResourceNotFoundException')
      throw new SourceTokenNotSetError(secretId, 'has no value yet');
    throw err;
  }
  if (secret === undefined)
    throw new SourceTokenNotSetError(
      secretId,
      binary ? 'holds a binary value, not a token' : 'has no value yet',
    );
  const token = secret.trim();
  if (token === '') throw new SourceTokenNotSetError(secretId, 'is empty');
  return token;
}
