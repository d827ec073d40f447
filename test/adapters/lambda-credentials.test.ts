import {
  credentialsTreatedAsExpired,
  credentialsWillNeedRefresh,
  defaultProvider,
} from '../../lambda/adapters/lambda-credentials';

// The deployed bundles' default credential provider (KeyguardFunction aliases the SDK's chain to it): the execution
// role's credentials as the Lambda runtime sets them in the environment.
const KEYS = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_CREDENTIAL_EXPIRATION',
] as const;
const saved = Object.fromEntries(KEYS.map((k) => [k, process.env[k]]));

afterEach(() => {
  for (const k of KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

test("gives the role's keys and session token from the environment, as Lambda sets them", async () => {
  // Prepare
  process.env.AWS_ACCESS_KEY_ID = 'ASIAIOSFODNN7EXAMPLE';
  process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  process.env.AWS_SESSION_TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN';
  process.env.AWS_CREDENTIAL_EXPIRATION = '2026-12-07T23:00:00Z';

  // Act
  const credentials = await defaultProvider()();

  // Assess
  expect(credentials).toEqual(
    expect.objectContaining({
      accessKeyId: 'ASIAIOSFODNN7EXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN',
      expiration: new Date('2026-12-07T23:00:00Z'),
    }),
  );
});

test('fails with the SDK’s credentials error when the environment has no keys (no other source is tried)', async () => {
  // Prepare
  for (const k of KEYS) delete process.env[k];

  // Act / Assess
  await expect(defaultProvider()()).rejects.toMatchObject({
    name: 'CredentialsProviderError',
    message: expect.stringContaining('environment variable credentials'),
  });
});

test("refresh rules are credential-provider-node's: only credentials with an expiry, five minutes early", () => {
  // Prepare
  const soon = new Date(Date.now() + 4 * 60_000);
  const later = new Date(Date.now() + 6 * 60_000);
  const keys = { accessKeyId: 'ASIAIOSFODNN7EXAMPLE', secretAccessKey: 'secret' };

  // Assess
  expect(credentialsWillNeedRefresh(keys)).toBe(false);
  expect(credentialsWillNeedRefresh({ ...keys, expiration: later })).toBe(true);
  expect(credentialsTreatedAsExpired({ ...keys, expiration: soon })).toBe(true);
  expect(credentialsTreatedAsExpired({ ...keys, expiration: later })).toBe(false);
  expect(credentialsTreatedAsExpired(undefined)).toBe(false);
});
