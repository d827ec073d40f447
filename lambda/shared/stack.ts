/**
 * The deployed stack's name and region, shared by the CDK app (lib/app.ts) and the CLI, which finds the stack's
 * outputs by this name without importing the app (that would bundle aws-cdk-lib into the CLI).
 */

/** The main stack's name (and construct id) in every environment. */
export const STACK_NAME = 'BedrockKeyGuard';

/** The region the app deploys the main stack to (IAM's events arrive on us-east-1's default bus only). */
export const STACK_REGION = 'us-east-1';
