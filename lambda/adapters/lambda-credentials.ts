import { fromEnv } from '@aws-sdk/credential-provider-env';

type EnvProvider = ReturnType<typeof fromEnv>;
type Credentials = Awaited<ReturnType<EnvProvider>>;

/**
 * The default credential provider of the deployed functions' bundles, in place of `@aws-sdk/credential-provider-node`
 * (KeyguardFunction's esbuild alias; never imported by name). The Lambda runtime hands a function its execution
 * role's credentials in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN ("Defined runtime environment
 * variables"), so the SDK's whole default chain (shared files, SSO, web identity, process, container and instance
 * metadata, with the nested STS/SSO clients they use) never answers there: it was 109–116 KB of every bundle
 * (15–19 %), all compiled by V8 at each cold start. Each SDK client still memoizes and refreshes what this returns.
 * Clients given credentials of their own (the member roles) never call it. The CLI keeps the full
 * chain: its bundle (scripts/build-cli.mjs) has no alias.
 */
export function defaultProvider(init: Parameters<typeof fromEnv>[0] = {}): EnvProvider {
  return fromEnv(init);
}

/** As `@aws-sdk/credential-provider-node` exports them (same rules): credentials that carry an expiry are refreshed. */
export function credentialsWillNeedRefresh(credentials: Credentials | undefined): boolean {
  return credentials?.expiration !== undefined;
}

/** Credentials within five minutes of their expiry are treated as expired (`@aws-sdk/credential-provider-node`'s rule). */
export function credentialsTreatedAsExpired(credentials: Credentials | undefined): boolean {
  return credentials?.expiration !== undefined && credentials.expiration.getTime() - Date.now() < 300_000;
}
