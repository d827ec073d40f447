import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { type BuildAppProps, buildApp } from '../../lib/app';

/** Context that makes NodejsFunction skip esbuild: unit tests assert on the template, not the bundle. */
export const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] as string[] };

/** An empty directory, so the default `keyguard.config.json` lookup never picks up a developer's file. */
export function emptyDir(): string {
  return mkdtempSync(join(tmpdir(), 'keyguard-lib-test-'));
}

/** Writes a config file (any JSON, valid or not) and returns its path. */
export function writeConfig(content: unknown): string {
  const file = join(emptyDir(), 'keyguard.config.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** Builds the app exactly as bin/app.ts does, without bundling, isolated from the working directory. */
export function build(props: BuildAppProps = {}) {
  const built = buildApp({
    cwd: emptyDir(),
    ...props,
    context: { ...NO_BUNDLING, ...props.context },
  });
  return { ...built, template: Template.fromStack(built.stack) };
}

type Resource = { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string };

/** The template's resources of one type, keyed by logical id. */
export function resourcesOf(template: Template, type: string): Record<string, Resource> {
  const found = template.findResources(type) as Record<string, Partial<Resource>>;
  return Object.fromEntries(
    Object.entries(found).map(([id, r]) => [id, { ...r, Type: type, Properties: r.Properties ?? {} }]),
  );
}

/** The single resource of a type (fails the test when there is not exactly one). */
export function onlyResource(template: Template, type: string): [string, Resource] {
  const entries = Object.entries(resourcesOf(template, type));
  if (entries.length !== 1) throw new Error(`expected exactly one ${type}, found ${entries.length}`);
  return entries[0] as [string, Resource];
}

export type Statement = {
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
  Principal?: unknown;
  Sid?: string;
};

export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

export function resourcesOfStatement(statement: Statement): unknown[] {
  return Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
}
