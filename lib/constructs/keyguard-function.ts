import * as path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** Repository root: Lambda code is referred to by entry path only, relative to it. */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

/**
 * esbuild `--alias` of every function's bundle: the SDK clients' default credential chain is the environment provider
 * alone (lambda/adapters/lambda-credentials.ts). A path esbuild resolves from the project root, where it runs.
 */
export const LAMBDA_CREDENTIALS_ALIAS =
  '@aws-sdk/credential-provider-node=./lambda/adapters/lambda-credentials.ts';

/** The Lambda runtime every keyguard function uses (kept in step with the bundle target below). */
export const KEYGUARD_RUNTIME = lambda.Runtime.NODEJS_22_X;

export interface KeyguardFunctionProps {
  /** Handler file, relative to the repository root (e.g. `lambda/handlers/credential-event.ts`). */
  readonly entry: string;
  /** Exported handler name. @default 'handler' */
  readonly handler?: string;
  /** Short description shown in the Lambda console. @default - none */
  readonly description?: string;
  /**
   * Environment for the function. Merged over the defaults (`NODE_OPTIONS=--enable-source-maps`),
   * never replacing them unless a key is given explicitly.
   * @default - only the defaults
   */
  readonly environment?: Record<string, string>;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default Duration.seconds(60) */
  readonly timeout?: Duration;
  /** @default logs.RetentionDays.ONE_YEAR */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Execution role. When omitted, a dedicated role is created with no AWS managed policies;
   * in both cases the role is granted write access to this function's own log group only.
   * @default - a new role
   */
  readonly role?: iam.IRole;
  /** Where failed asynchronous invocations go. @default - none */
  readonly onFailure?: lambda.IDestination;
  /** Retries of a failed asynchronous invocation (0..2). @default 2 */
  readonly retryAttempts?: number;
  /** Longest an asynchronous event is kept for retries. @default Duration.hours(6) */
  readonly maxEventAge?: Duration;
}

/**
 * The one place that holds keyguard's Lambda defaults: Node.js 22 on ARM64, 512 MB, 60 s, an explicit
 * log group (1 year, retained), a minified CJS bundle of the packages' ES module builds (tree-shaken) with source
 * maps (mappings only, no sources' text; source-map support switched on), the pinned AWS SDK bundled rather than the
 * runtime's copy with the environment as its only credential source, and an execution role without managed policies.
 */
export class KeyguardFunction extends Construct {
  /** The function. */
  public readonly function: NodejsFunction;
  /** The function's log group (retained on stack deletion: it is part of the audit trail). */
  public readonly logGroup: logs.LogGroup;
  /** The execution role. */
  public readonly role: iam.IRole;

  constructor(scope: Construct, id: string, props: KeyguardFunctionProps) {
    super(scope, id);

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.role =
      props.role ??
      new iam.Role(this, 'Role', {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `Execution role of ${this.node.path} (no AWS managed policies)`,
      });
    // Only CreateLogStream/PutLogEvents, on this function's own log group (no logs:CreateLogGroup, no `*`).
    this.logGroup.grantWrite(this.role);

    this.function = new NodejsFunction(this, 'Function', {
      entry: path.join(PROJECT_ROOT, props.entry),
      handler: props.handler ?? 'handler',
      description: props.description,
      runtime: KEYGUARD_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(60),
      role: this.role,
      logGroup: this.logGroup,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      projectRoot: PROJECT_ROOT,
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        minify: true,
        sourceMap: true,
        // Stack traces need the mappings and names only: without the sources' text the map is a third of the size,
        // and Node reads and parses it at load (--enable-source-maps).
        sourcesContent: false,
        target: 'node22',
        format: OutputFormat.CJS,
        // Packages' ES module builds first (the AWS SDK's dist-es, zod's index.js): esbuild drops what the entry does
        // not import (unused SDK commands and their schemas, zod's locales) only from ES modules. With the default
        // (`main` first) every client's whole CommonJS build was bundled, and compiling it was most of a cold start.
        mainFields: ['module', 'main'],
        // Bundle the exactly-pinned @aws-sdk/* from package-lock.json instead of whatever the runtime ships.
        externalModules: [],
        // Lambda gives the execution role's credentials in environment variables: the SDK's default chain is
        // replaced by the environment provider alone (lambda/adapters/lambda-credentials.ts), so the chain's other
        // providers and their nested clients (109–116 KB, 15–19 % of each bundle) are not compiled at every cold
        // start. The CLI's bundle keeps the whole chain.
        esbuildArgs: { '--alias': LAMBDA_CREDENTIALS_ALIAS },
      },
      onFailure: props.onFailure,
      retryAttempts: props.retryAttempts ?? 2,
      maxEventAge: props.maxEventAge ?? Duration.hours(6),
    });
  }
}
