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
    /** What is wrong with the value ("has no value yet", "is empty"…). */
    readonly why: string,
    /** What --secret-string takes, as the message shows it. */
    value = '<token>',
  ) {
    super(
      `the token secret ${secretId} ${why}: put the token in with ` +
        `aws secretsmanager put-secret-value --secret-id ${secretId} --secret-string ${value}`,
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

/** An Atlassian account's e-mail and API token (the Jira secret holds them as JSON). */
export interface AtlassianCredentials {
  email: string;
  apiToken: string;
}

/** How the Jira secret's value is written (docs/deployment.md shows the same). */
export const ATLASSIAN_SECRET_EXAMPLE = '\'{"email":"<e-mail>","apiToken":"<API token>"}\'';

/**
 * The e-mail and API token in `secretId`, a JSON object {"email", "apiToken"}; SourceTokenNotSetError when there is
 * none or the value is not that object (the message never shows the value).
 */
export async function readAtlassianCredentials(
  client: SecretsManagerClient,
  secretId: string,
): Promise<AtlassianCredentials> {
  let value: string;
  try {
    value = await readSourceToken(client, secretId);
  } catch (err) {
    if (err instanceof SourceTokenNotSetError)
      throw new SourceTokenNotSetError(secretId, err.why, ATLASSIAN_SECRET_EXAMPLE);
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  const o = (parsed && typeof parsed === 'object' ? parsed : {}) as Record<string, unknown>;
  const email = typeof o.email === 'string' ? o.email.trim() : '';
  const apiToken = typeof o.apiToken === 'string' ? o.apiToken.trim() : '';
  if (!email || !apiToken)
    throw new SourceTokenNotSetError(
      secretId,
      'is not a JSON object with a non-empty "email" and "apiToken"',
      ATLASSIAN_SECRET_EXAMPLE,
    );
  return { email, apiToken };
}
