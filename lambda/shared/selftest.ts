/**
 * How `keyguard selftest`'s throwaway users are named and tagged: shared by the CLI (lambda/cli/selftest.ts) and the
 * stack's SelftestPolicy (lib/constructs/selftest-policy.ts), which allows IAM writes on these names only.
 */

/** Every self-test user's name starts with this; decisions on such users are self-test decisions. */
export const SELFTEST_USER_PREFIX = 'keyguard-selftest-';

/**
 * Tag on every self-test user; its value is the time until which its run may still be going (ISO-8601). Only users
 * with it are deleted as leftovers, and only after that time.
 */
export const SELFTEST_TAG = 'keyguard:selftest';

/** Whether a user name is a self-test user's: their decisions in the audit are self-test decisions. */
export function isSelftestUser(userName: string): boolean {
  return userName.startsWith(SELFTEST_USER_PREFIX);
}
