import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import type { Construct } from 'constructs';
import { GOVERNANCE_BUS_REGION, governanceBusArn } from './constructs/governance-bus';
import { UsageForwarding } from './constructs/usage-forwarding';

/** The stack name of a region's usage stack. */
export function usageStackName(region: string): string {
  return `BedrockKeyGuardUsage-${region}`;
}

/** Thrown when a usage stack is asked for us-east-1 (the main stack forwards that region itself). */
export class UsageRegionError extends Error {
  constructor(region: string) {
    super(
      `usage.regions: a usage stack for ${JSON.stringify(region)} is not allowed: ${GOVERNANCE_BUS_REGION} is ` +
        'forwarded by the BedrockKeyGuard stack itself.',
    );
    this.name = 'UsageRegionError';
  }
}

export interface UsageStackProps extends StackProps {
  /** A concrete region other than us-east-1 (`env.region`). */
  readonly env: { readonly account?: string; readonly region: string };
}

/**
 * Flow 3 in one Bedrock region other than us-east-1: forwards the region's bearer-token Bedrock calls to the
 * governance bus in us-east-1, addressed by its fixed ARN (no cross-region reference, no custom resource). The
 * bus must exist first: lib/app.ts makes each usage stack depend on the main stack, so `cdk deploy --all` orders
 * them.
 */
export class UsageStack extends Stack {
  public readonly forwarding: UsageForwarding;

  constructor(scope: Construct, id: string, props: UsageStackProps) {
    if (props.env.region === GOVERNANCE_BUS_REGION) throw new UsageRegionError(props.env.region);
    super(scope, id, {
      description: `Bedrock Key Guard: forwards Bedrock API key use in ${props.env.region} to the governance bus`,
      ...props,
    });

    const governanceBus = events.EventBus.fromEventBusArn(this, 'GovernanceBus', governanceBusArn(this));
    this.forwarding = new UsageForwarding(this, 'UsageForwarding', { governanceBus });

    new CfnOutput(this, 'UsageForwardingDeadLetterQueueUrl', {
      description: `Usage events in ${this.region} that EventBridge could not put on the governance bus`,
      value: this.forwarding.deadLetterQueue.queueUrl,
    });
  }
}
